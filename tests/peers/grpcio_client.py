#!/usr/bin/env python3
"""A gRPC C-core client (Python grpcio, default channel options) calling CRI
over pinshim's Unix socket. Run by tests/peer_grpcio.rs.

Usage: grpcio_client.py PROTO_DIR SOCKET

Generates the CRI stubs from PROTO_DIR/api.proto into a temporary directory,
then calls Version, ListContainers and GetContainerEvents (opened, read for a
moment, cancelled), printing one line per call. Any failure exits non-zero.
"""

import importlib
import os
import sys
import tempfile
import threading

import grpc
from grpc_tools import protoc

# Generous for a loaded 2-core machine; a healthy call takes milliseconds.
CALL_TIMEOUT = 30
EVENT_WAIT = 1.0


def load_stubs(proto_dir, out_dir):
    args = ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}", os.path.join(proto_dir, "api.proto")]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed for {proto_dir}/api.proto")
    sys.path.insert(0, out_dir)
    return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")


def container_events(api, stub):
    call = stub.GetContainerEvents(api.GetEventsRequest(), timeout=CALL_TIMEOUT)
    received = []
    ended = []

    def read():
        try:
            received.append(next(call))
        except grpc.RpcError as e:
            ended.append(e)
        except StopIteration:
            ended.append(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(EVENT_WAIT)
    if ended or not (received or call.is_active()):
        sys.exit(f"GetContainerEvents ended before it was cancelled: {call.code()} {call.details()}")
    call.cancel()
    reader.join(CALL_TIMEOUT)
    if call.code() != grpc.StatusCode.CANCELLED:
        sys.exit(f"GetContainerEvents: expected CANCELLED after cancel, got {call.code()} {call.details()}")
    print(f"container_events events={len(received)} status={call.code().name}")


def main():
    proto_dir, socket = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out_dir:
        api, api_grpc = load_stubs(proto_dir, out_dir)
        with grpc.insecure_channel(f"unix://{socket}") as channel:
            stub = api_grpc.RuntimeServiceStub(channel)
            v = stub.Version(api.VersionRequest(version="v1"), timeout=CALL_TIMEOUT)
            print(f"version runtime_name={v.runtime_name} runtime_api_version={v.runtime_api_version}"
                  f" runtime_version={v.runtime_version}")
            listed = stub.ListContainers(api.ListContainersRequest(), timeout=CALL_TIMEOUT)
            print(f"list_containers containers={len(listed.containers)}")
            container_events(api, stub)
    print(f"grpcio {grpc.__version__}: all calls ok")


if __name__ == "__main__":
    main()
