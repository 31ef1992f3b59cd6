"""The object-store settings (LEO_FLEET_S3_*, AWS_* credentials or a credentials file): checked once at load, one
line naming the variable, the secret key in no repr, no error and no SQL text."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import lake
from ingest.settings import S3Settings, Settings, SettingsError

SECRET = "s3cr3t-do-not-print"


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"LEO_FLEET_S3_ENDPOINT": "no-port"}, "LEO_FLEET_S3_ENDPOINT"),
        ({"LEO_FLEET_S3_ENDPOINT": "host:99999"}, "LEO_FLEET_S3_ENDPOINT"),
        ({"LEO_FLEET_S3_REGION": "eu west"}, "LEO_FLEET_S3_REGION"),
        ({"LEO_FLEET_S3_URL_STYLE": "virtual"}, "LEO_FLEET_S3_URL_STYLE"),
        ({"LEO_FLEET_S3_USE_SSL": "yes"}, "LEO_FLEET_S3_USE_SSL"),
        ({"AWS_SECRET_ACCESS_KEY": SECRET}, "AWS_ACCESS_KEY_ID"),
        ({"LEO_FLEET_S3_CREDENTIALS_FILE": "/nonexistent/credentials"}, "LEO_FLEET_S3_CREDENTIALS_FILE"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    message = str(refused.value)
    assert variable in message and "\n" not in message and SECRET not in message


def test_settings_from_the_environment() -> None:
    env = {
        "LEO_FLEET_S3_ENDPOINT": "127.0.0.1:8333",
        "LEO_FLEET_S3_REGION": "eu-west-1",
        "LEO_FLEET_S3_URL_STYLE": "path",
        "LEO_FLEET_S3_USE_SSL": "FALSE",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    settings = Settings.from_env(env)
    assert settings.s3 == S3Settings("127.0.0.1:8333", "eu-west-1", "path", False, "AKID", SECRET)
    assert SECRET not in repr(settings)
    options, values = settings.s3.secret_options()
    assert SECRET not in options and SECRET in values


@pytest.mark.parametrize(
    "text, usable",
    [
        (f"[default]\naws_access_key_id = AKID\naws_secret_access_key = {SECRET}\n", True),
        (f"[other]\naws_access_key_id = AKID\naws_secret_access_key = {SECRET}\n", False),
        (f"aws_secret_access_key = {SECRET}\n", False),  # no section header
        ("[default]\naws_access_key_id = AKID\n", False),
    ],
)
def test_a_credentials_file(tmp_path: Path, text: str, usable: bool) -> None:
    path = tmp_path / "credentials"
    path.write_text(text)
    env = {"LEO_FLEET_S3_CREDENTIALS_FILE": str(path)}
    if usable:
        assert (Settings.from_env(env).s3.key_id, Settings.from_env(env).s3.secret) == ("AKID", SECRET)
        # The environment's pair wins over the file.
        both = Settings.from_env({**env, "AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "ENVSECRET"})
        assert (both.s3.key_id, both.s3.secret) == ("ENV", "ENVSECRET")
    else:
        with pytest.raises(SettingsError, match="LEO_FLEET_S3_CREDENTIALS_FILE") as refused:
            Settings.from_env(env)
        assert SECRET not in str(refused.value)


def test_an_s3_data_path_gets_its_secret_and_httpfs_from_the_wheel(tmp_path: Path) -> None:
    """No server needed: the secret and extension are set up before the ATTACH, which then fails to reach it."""
    settings = Settings.from_env(
        {
            "LEO_FLEET_DATA_DIR": str(tmp_path),
            "LEO_FLEET_LAKE_DATA_PATH": "s3://bucket/lake/",
            "LEO_FLEET_S3_ENDPOINT": "127.0.0.1:9",
            "LEO_FLEET_S3_URL_STYLE": "path",
            "LEO_FLEET_S3_USE_SSL": "false",
            "AWS_ACCESS_KEY_ID": "AKID",
            "AWS_SECRET_ACCESS_KEY": SECRET,
        }
    )
    con = lake.session(settings)
    try:
        loaded = {
            row[0] for row in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()
        }
        assert "httpfs" in loaded
        (secret,) = con.execute("SELECT secret_string FROM duckdb_secrets() WHERE name = 'leo_fleet_s3'").fetchone()
        assert "endpoint=127.0.0.1:9" in secret and "url_style=path" in secret and "use_ssl=false" in secret
        assert "key_id=AKID" in secret and SECRET not in secret
    finally:
        con.close()
