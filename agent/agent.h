// The cloudha agent: wires the peer listener (mutual TLS), the admin socket,
// the optional plaintext health listener, one HelloPath per peer address, the
// failure detector, the role machine, monitors, hooks and the event history
// together.
//
// Threads: every hello path has its own; one role thread ticks every
// heartbeat interval (failure detection, election, role changes, epoch
// storage); hooks run on the hook runner's thread and monitors on theirs, so
// neither ever delays a hello. Hellos read the role state through
// LocalNode, which is only ever locked to copy it.
#ifndef CLOUDHA_AGENT_AGENT_H_
#define CLOUDHA_AGENT_AGENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "agent/admin_service.h"
#include "base/clock.h"
#include "agent/epoch_store.h"
#include "agent/event_log.h"
#include "agent/health_publisher.h"
#include "agent/http_probe.h"
#include "agent/hook_runner.h"
#include "agent/hello_path.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/metrics.h"
#include "agent/monitor_set.h"
#include "agent/node_core.h"
#include "agent/peer_service.h"
#include "agent/peer_verifier.h"
#include "agent/role_machine.h"
#include "agent/config_sync.h"
#include "agent/service_notifier.h"
#include "agent/session_sync.h"
#include "cloudha/v1/config.pb.h"
#include "agent/arbiter_client.h"
#include "agent/tls_watcher.h"
#include "crypto/reloadable_credentials.h"
#include "crypto/tls_material.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server.h"

namespace cloudha {

inline constexpr char kPrimaryService[] = "cloudha.v1.Primary";
inline constexpr char kSecondaryService[] = "cloudha.v1.Secondary";

// Create(), then Start() once, then Shutdown() once (the destructor shuts
// down too). The AdminBackend methods are thread-safe.
class Agent : public AdminBackend, private NodeCoreEnv {
 public:
  // `config` must have passed LoadAgentConfig's checks. `boot_id` is this
  // process's incarnation (random); `clock` outlives the agent.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(v1::AgentConfig config,
                                                       uint64_t boot_id, Clock* clock);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Opens the listeners and starts talking to peers. A listener that cannot
  // be opened (port in use, another agent on the admin socket) is an error
  // and nothing is left running.
  absl::Status Start();

  // A primary first hands its role to the best eligible peer (and waits up
  // to interval * threshold for it), so a planned stop costs no detection
  // time; then health turns NOT_SERVING and everything stops.
  void Shutdown();

  v1::StatusResponse Status() override;
  absl::StatusOr<v1::FailoverResponse> Failover(const std::string& to,
                                                absl::Duration timeout) override;
  std::vector<v1::Event> Events(uint64_t after, uint64_t* last) override;
  bool WaitForEvents(uint64_t after, absl::Duration timeout) override;
  bool Stopping() override;
  // Rereads the configuration file given to SetConfigFile (SIGHUP, `cloudha
  // reload`) and the TLS files: applies changes to heartbeat, log, hooks,
  // monitors and config_sync.exclude live; refuses the whole file (FAILED_PRECONDITION naming the sections)
  // when anything else changed, and (INVALID_ARGUMENT) when it has
  // problems; a refused file changes nothing. Logged as config_reloaded or
  // reload_refused.
  absl::StatusOr<v1::ReloadResponse> Reload() override;
  // The file Reload rereads; set before Start.
  void SetConfigFile(std::string path) { config_file_ = std::move(path); }

  // Who hears READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 (systemd's
  // notify protocol); set before Start, outlives the agent. None: no one.
  void SetServiceNotifier(ServiceNotifier* notifier) { notifier_ = notifier; }

  // Rereads the TLS files now (SIGHUP) instead of at the next poll; new
  // material is checked first, and established streams keep theirs
  // (agent/tls_watcher.h). Returns at once.
  void ReloadTls();

 private:
  // Failover's work; `must_replicate`: refuse when a secondary has not
  // applied the last config commit (an operator's handover), rather than
  // hand over anyway (a stopping agent).
  absl::StatusOr<v1::FailoverResponse> HandOver(const std::string& to, absl::Duration timeout,
                                                bool must_replicate);
  // Waits (until `deadline`) while no live peer that could take the role
  // (`to`, or any) is eligible by its hello but one soon will be: its
  // resync is running, or its hello after a role change is on the way.
  // Returns at once unless this node is primary. For Failover and for the
  // handover of a stopping primary.
  void WaitForEligiblePeer(const std::string& to, absl::Time deadline);
  // `arbiter`: the lease keeper of config.arbiter (null without one).
  Agent(v1::AgentConfig config, TlsMaterial tls,
        std::unique_ptr<ReloadableCredentials> credentials, uint64_t boot_id,
        uint64_t stored_epoch, std::unique_ptr<ArbiterBackend> arbiter, Clock* clock);

  // Start()'s steps, in order.
  // The config store and the session source, before anyone can ask for them.
  absl::Status StartReplication();
  // The peer, admin and health listeners (agent/grpc_endpoints.h).
  absl::Status OpenListeners();
  // Health NOT_SERVING for every service until the role is decided.
  void PublishInitialHealth();
  // What the HTTP probe answers (civetweb's threads ask).
  ProbeView ProbeState();
  // Queues the TO_PRIMARY hooks with recheck_s that are due (role thread);
  // when the next one is.
  absl::Time RecheckPrimaryHooks(absl::Time now);
  // One HelloPath per peer address, each on a channel of its own.
  void CreateHelloPaths();
  // Hook runners, monitors, hello paths and the role thread.
  void StartThreads();
  void Tick();
  // The role thread's news for the service manager: READY=1 after the first
  // role decision, STATUS= when the role line changes, WATCHDOG=1 on time.
  // Returns when the next WATCHDOG=1 is due (InfiniteFuture: never).
  absl::Time NotifyServiceManager(absl::Time now);
  void Note(const std::string& kind, const std::string& message,
            std::map<std::string, std::string> fields = {});
  void OnPrimaryHooksDone(uint64_t epoch, bool ok, const std::string& detail);

  // NodeCoreEnv: what the role logic asks of the process around it.
  uint32_t MonitorPenalty() override;
  bool AllMonitorsFailing() override;
  bool InSync() override;
  absl::Status StoreEpoch(uint64_t epoch) override;
  void FollowRole(v1::Role role, uint64_t epoch, const std::string& primary,
                  const std::vector<Membership::LivePeer>& live) override;
  void OnRoleChanged(const RoleChange& change, const RoleMachine& role) override;
  void SetServing(bool primary, bool secondary) override;
  void OnMembershipChange(const Membership::Change& change) override;
  ArbiterInput Arbiter(absl::Time now) override;
  void WantLease(bool want, uint64_t epoch) override;

  void HandOverBeforeStopping();
  // Wakes the role thread early (a peer's hello brought news).
  void Wake();

  const v1::AgentConfig config_;
  Clock* clock_;
  // Every TLS listener and channel of the agent uses these; the watcher
  // installs new material into them. Before everything that holds them.
  std::unique_ptr<ReloadableCredentials> credentials_;
  TlsWatcher tls_watcher_;
  LocalNode local_;
  PeerVerifier verifier_;
  Membership membership_;
  HealthPublisher health_;
  // Before everything that records into it.
  Metrics metrics_;
  // Before the services that use it.
  SessionSync sessions_;
  ConfigSync config_sync_;
  PeerServiceImpl peer_service_;
  AdminServiceImpl admin_service_;
  EventLog events_;
  EpochStore epoch_store_;
  // Reload's work under reload_mu_; a replaced monitor set goes to
  // `retired`, for the caller to stop outside the lock.
  absl::StatusOr<v1::ReloadResponse> ReloadLocked(std::shared_ptr<MonitorSet>* retired);
  // Replaced by a reload that changes monitors: read through monitors().
  std::shared_ptr<MonitorSet> monitors() const ABSL_LOCKS_EXCLUDED(monitors_mu_);
  std::shared_ptr<MonitorSet> MakeMonitors(const v1::AgentConfig& config);
  mutable absl::Mutex monitors_mu_;
  std::shared_ptr<MonitorSet> monitors_ ABSL_GUARDED_BY(monitors_mu_);
  std::unique_ptr<HookRunner> hooks_;
  std::unique_ptr<HookRunner> peer_hooks_;
  // The split-brain arbiter's lease; null without an arbiter.
  std::unique_ptr<ArbiterClient> arbiter_;
  // The role logic; after everything its environment (this) uses.
  NodeCore core_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<grpc::Server> admin_server_;
  // Declared before health_server_, which uses it, so it outlives it.
  std::unique_ptr<grpc::CallbackGenericService> health_fallback_;
  std::unique_ptr<grpc::Server> health_server_;
  // health.http_listen and health.tcp_primary_listen; null when not set.
  std::unique_ptr<HttpProbe> http_probe_;
  // metrics.listen; null when not set. Its port, for Status (which must not
  // touch the server: Shutdown resets it while scrapes may run).
  std::unique_ptr<HttpServer> metrics_server_;
  std::atomic<int> metrics_port_{0};
  std::unique_ptr<TcpPrimaryListener> tcp_primary_;
  // Role thread only: each re-checked TO_PRIMARY hook (by its argv), for
  // the promotion at recheck_epoch_: its period, when it runs next, and
  // whether a run is still queued or running (set false by the hook
  // worker), so runs never pile up behind a slow cloud API.
  struct Recheck {
    absl::Duration every;
    absl::Time due;
    std::shared_ptr<std::atomic<bool>> running;
  };
  std::map<std::vector<std::string>, Recheck> recheck_;
  uint64_t recheck_epoch_ = 0;
  std::vector<std::unique_ptr<HelloPath>> paths_;
  absl::Notification stop_;
  std::thread ticker_;
  absl::Mutex wake_mu_;
  // What the role thread sleeps on; shared with the hello threads that wake
  // it, each sleep gets a fresh one (a Notification cannot be reset).
  std::shared_ptr<absl::Notification> wake_ ABSL_GUARDED_BY(wake_mu_);
  bool started_ = false;
  bool shut_down_ = false;
  ServiceNotifier* notifier_ = nullptr;
  // Set when a stop begins (STOPPING=1 sent).
  std::atomic<bool> stopping_notified_{false};
  std::string config_file_;
  // heartbeat.interval_ms and lost_threshold as a reload last set them.
  std::atomic<uint32_t> interval_ms_{0};
  std::atomic<uint32_t> lost_threshold_{0};
  // Reloads one at a time; the configuration the last one applied.
  absl::Mutex reload_mu_;
  v1::AgentConfig current_ ABSL_GUARDED_BY(reload_mu_);
  bool reload_closed_ ABSL_GUARDED_BY(reload_mu_) = false;
  // Set when Start finished (the hello paths exist).
  bool reload_open_ ABSL_GUARDED_BY(reload_mu_) = false;
  // The role thread's own.
  bool ready_sent_ = false;
  std::string status_sent_;
  absl::Time next_watchdog_ = absl::InfinitePast();
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_AGENT_H_
