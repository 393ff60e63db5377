"""One record shape: the storage layer's field list and the check names are the public model's."""

from __future__ import annotations

from typing import get_args


def test_stored_public_fields_are_the_public_models() -> None:
    from idv import records, schemas

    assert tuple(schemas.Verification.model_fields) == records.PUBLIC_FIELDS


def test_every_check_has_one_provider_and_one_name() -> None:
    from idv import checks, schemas

    assert set(checks.PROVIDER_OF) == set(get_args(schemas.Check))
    assert set(get_args(schemas.UploadCheck)) <= set(get_args(schemas.Check))
    assert set(get_args(schemas.Verification.model_fields["provider"].annotation)) == set(checks.PROVIDER_OF.values())


def test_importing_the_storage_layer_does_not_import_pydantic() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    layer = Path(__file__).resolve().parents[2] / "layers" / "idv"
    env = {**os.environ, "PYTHONPATH": str(layer)}
    code = "import sys, idv.records, idv.claims; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
