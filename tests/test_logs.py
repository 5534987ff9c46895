"""The access line's fast path (JSON logs written directly to the handlers) carries a transport's own fields;
every line written while a request is served carries the request's id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import structlog

from mlgate.logs import REQUEST_ID, configure_logging, log_access


def test_the_json_access_line_carries_the_extra_fields_of_a_grpc_call(tmp_path: Path) -> None:
    log_file = tmp_path / "mlgate.jsonl"
    configure_logging("info", "json", log_file)
    try:
        log_access("GRPC", "/inference.GRPCInferenceService/ModelInfer", 4, 242.3, "call-1",
                   grpc_status="DEADLINE_EXCEEDED", caller=None, client="198.51.100.7", peer="10.0.0.5")
        log_access("POST", "/v2/models/m/infer", 200, 1.5, "rest-1")
    finally:
        file_handler = logging.root.handlers[-1]
        configure_logging("info", "json")  # as tests/conftest.py left it
    assert isinstance(file_handler, logging.FileHandler) and file_handler.stream is None  # the file was closed
    grpc_line, rest_line = (json.loads(line) for line in log_file.read_text().splitlines())
    assert grpc_line["request_id"] == "call-1" and grpc_line["logger"] == "mlgate.access"
    assert {k: grpc_line[k] for k in ("method", "status", "grpc_status", "caller", "client", "peer")} == {
        "method": "GRPC", "status": 4, "grpc_status": "DEADLINE_EXCEEDED", "caller": None,
        "client": "198.51.100.7", "peer": "10.0.0.5"}
    assert "peer" not in rest_line and rest_line["status"] == 200  # REST lines are as they were


def test_every_line_written_while_a_request_is_served_carries_its_id(tmp_path: Path) -> None:
    log_file = tmp_path / "mlgate.jsonl"
    configure_logging("info", "json", log_file)
    try:
        token = REQUEST_ID.set("req-7")  # what the edge does for each HTTP request
        try:
            structlog.get_logger("mlgate.test").warning("model raised during inference")
            logging.getLogger("some.library").warning("a library's own line")
            structlog.get_logger("mlgate.test").info("an explicit id wins", request_id="other")
        finally:
            REQUEST_ID.reset(token)
        structlog.get_logger("mlgate.test").info("after the request")
    finally:
        configure_logging("info", "json")  # as tests/conftest.py left it
    lines = {line["event"]: line for line in map(json.loads, log_file.read_text().splitlines())}
    assert lines["model raised during inference"]["request_id"] == "req-7"
    assert lines["a library's own line"]["request_id"] == "req-7"
    assert lines["an explicit id wins"]["request_id"] == "other"
    assert "request_id" not in lines["after the request"]
