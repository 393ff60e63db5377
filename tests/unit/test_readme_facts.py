"""The README and docs/deploy.md say what the code and the template do: examples that pass the
gateway's own checks, every error code API Gateway can answer with, commands that do not lose data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from idv.validation import validate_id_number
from sandbox.stack import template as tpl

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEPLOY = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def test_readme_example_id_numbers_pass_the_gb_11643_check():
    numbers = re.findall(r'"id_number": "([0-9Xx]{18})"', README)
    assert numbers
    for number in numbers:
        validate_id_number(number)
    # The masked form in the example answer is the example's own number.
    for masked in re.findall(r'"id_number": "(\d{3}\*+[0-9X]{4})"', README):
        assert any(n.startswith(masked[:3]) and n.endswith(masked[-4:]) for n in numbers), masked


def test_readme_lists_every_code_api_gateway_answers_with():
    responses = tpl.gateway_responses(tpl.load_template())
    codes = set()
    for response in responses.values():
        body = response.templates["application/json"].replace("$context.error.messageString", '"m"')
        codes.add(json.loads(body.replace("$context.", ""))["code"])
    assert {"invalid_api_key", "request_too_large", "rate_limited", "quota_exceeded", "internal_error"} <= codes
    listed = set(re.findall(r"`([a-z_]+)`", README))
    assert codes <= listed, codes - listed


def test_readme_documents_the_size_limits_and_the_upload_path():
    section = README[README.index("## API") : README.index("## Configuration")]
    assert "10 MB" in section and "6 MB" in section and "request_too_large" in section
    assert "POST /v1/uploads" in section[section.index("6 MB") :]


@pytest.mark.parametrize("name", ["README.md", "docs/deploy.md"])
def test_secret_commands_keep_the_generated_pii_hmac_key(name):
    """`put-secret-value` replaces the whole secret: every command that writes it merges into the
    current value (which holds the generated pii_hmac_key) in the same block."""
    text = README if name == "README.md" else DEPLOY
    blocks = [b for b in code_blocks(text) if "put-secret-value" in b]
    assert blocks, name
    for block in blocks:
        assert "get-secret-value" in block and "jq" in block, block
        assert block.index("get-secret-value") < block.index("put-secret-value"), block


def test_the_upload_worker_events_bucket_is_called_out_as_one_to_change():
    event = json.loads((ROOT / "events" / "upload_worker.json").read_text(encoding="utf-8"))
    record = json.loads(event["Records"][0]["body"])["Records"][0]
    bucket = record["s3"]["bucket"]["name"]
    key = record["s3"]["object"]["key"]
    assert bucket in DEPLOY and key in DEPLOY
    assert "upload_worker.json" in README
