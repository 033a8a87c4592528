// The witness's gRPC service (cloudha.v1.Witness) over its lease table. The
// cluster and node of every request must be those of the caller's verified
// certificate, and the cluster the witness's own (a certificate the CA made
// for another cluster may not touch this one's lease).
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_WITNESS_SERVICE_H_
#define CLOUDHA_AGENT_WITNESS_SERVICE_H_

#include <set>
#include <string>

#include "agent/witness_leases.h"
#include "cloudha/v1/witness.grpc.pb.h"

namespace cloudha {

class WitnessServiceImpl final : public v1::Witness::Service {
 public:
  // `leases` outlives the service; `cluster` is the one served (the one
  // the witness's certificate names).
  WitnessServiceImpl(WitnessLeases* leases, std::string cluster)
      : leases_(leases), cluster_(std::move(cluster)) {}

  grpc::Status Acquire(grpc::ServerContext* context, const v1::LeaseRequest* request,
                       v1::LeaseReply* reply) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::LeaseRequest* request,
                       v1::LeaseReply* reply) override;

 private:
  // The caller may ask for this request.
  absl::Status Check(grpc::ServerContext* context, const v1::LeaseRequest& request) const;

  WitnessLeases* const leases_;
  const std::string cluster_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_WITNESS_SERVICE_H_
