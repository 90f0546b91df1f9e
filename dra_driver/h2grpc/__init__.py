"""A gRPC server over HTTP/2 on unix sockets, for the kubelet plugin's unary and server-streaming calls.

It replaces ``grpcio``'s server in the plugin: the thread that reads a request answers it (no hand-off
between threads on a call's path) and the plugin does not import ``grpc`` at all. See docs/kubelet-plugin.md.
"""
