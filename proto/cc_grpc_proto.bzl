"""One small macro that compiles .proto files with Debian's protoc and
grpc_cpp_plugin into a cc_library.

Generated headers are included by their proto path below `root`, e.g.
"cloudha/v1/peer.pb.h" for proto/cloudha/v1/peer.proto with root "proto".
"""

def cc_grpc_proto(name, srcs, root, proto_paths = [], imports = [], deps = [], visibility = None):
    """Generates <src>.pb.{h,cc} and <src>.grpc.pb.{h,cc} for each src.

    Args:
      name: the cc_library.
      srcs: .proto files; their paths below `root` decide the output names.
      root: folder (relative to the workspace or an external repository) that
        import statements are relative to.
      proto_paths: further -I folders for imports (e.g. external repositories).
      imports: .proto files below proto_paths that srcs import: inputs of
        protoc, compiled by the targets in deps.
      deps: cc_library targets of imported protos.
      visibility: of the cc_library.
    """
    outs = []
    for src in srcs:
        rel = src.split(":")[-1]
        if rel.startswith(root + "/"):
            rel = rel[len(root) + 1:]
        stem = rel[:-len(".proto")]
        outs += [stem + ext for ext in [".pb.h", ".pb.cc", ".grpc.pb.h", ".grpc.pb.cc"]]
    includes = " ".join(["-I" + p for p in [root] + proto_paths + ["/usr/include"]])
    native.genrule(
        name = name + "_gen",
        srcs = srcs + imports,
        outs = outs,
        cmd = " ".join([
            "protoc",
            includes,
            "--cpp_out=$(GENDIR)/" + native.package_name(),
            "--grpc_out=$(GENDIR)/" + native.package_name(),
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
            " ".join(["$(location %s)" % src for src in srcs]),
        ]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        strip_include_prefix = "/" + native.package_name(),
        deps = deps + ["@system//:grpc++", "@system//:protobuf"],
        visibility = visibility,
    )
