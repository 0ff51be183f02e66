"""nginx configuration for the local fleet, checked by the real nginx binary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx


def upstream_block(text: str) -> str:
    match = re.search(r"upstream inferfleet_instances \{(.*?)\}", text, re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    ("routing", "method"),
    [("least_outstanding_requests", "least_conn;"), ("random", "random;"), ("round_robin", None)],
)
def test_rendered_config_passes_nginx_t(tmp_path: Path, routing: str, method: str | None) -> None:
    paths = nginx.NginxPaths(tmp_path / "prefix")
    paths.create()
    config = nginx.NginxConfig(listen_port=18080, upstream_ports=(18081, 18082), routing=routing)
    nginx.write_config(config, paths)

    nginx.check_config(nginx.find_nginx(), paths)

    upstream = upstream_block(paths.conf.read_text())
    methods = {"least_conn;", "random;"} & {line.strip() for line in upstream.splitlines()}
    assert methods == ({method} if method else set())
    assert "server 127.0.0.1:18081 max_fails=0;" in upstream
    assert "server 127.0.0.1:18082 max_fails=0;" in upstream
    assert "zone inferfleet_instances" in upstream
    assert "keepalive 256;" in upstream


def test_streaming_proxy_settings_and_loopback_only(tmp_path: Path) -> None:
    paths = nginx.NginxPaths(tmp_path)
    text = nginx.render(
        nginx.NginxConfig(
            listen_port=18080, upstream_ports=(1,), routing="random", generation=3, token="ab12"
        ),
        paths,
    )

    assert re.findall(r"^\s*listen (\S+)", text, re.M) == ["127.0.0.1:18080"]
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "daemon off;",
        f"pid {paths.pid_file};",
    ):
        assert directive in text
    assert '\'{"generation": 3, "routing": "random", "token": "ab12"}\'' in text
    # Every temp path stays inside the private prefix.
    for temp in re.findall(r"_temp_path (\S+);", text):
        assert Path(temp).is_relative_to(tmp_path)


def test_a_bad_nginx_config_is_reported_with_nginx_words(tmp_path: Path) -> None:
    paths = nginx.NginxPaths(tmp_path)
    paths.create()
    paths.conf.write_text("events {}\nhttp { bogus_directive on; }\n")

    with pytest.raises(UserError, match="bogus_directive"):
        nginx.check_config(nginx.find_nginx(), paths)


def test_missing_nginx_names_the_install_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nginx.NGINX_ENV, "/nonexistent/nginx")

    with pytest.raises(UserError, match=r"apt-get install nginx") as caught:
        nginx.find_nginx()
    assert caught.value.exit_code == 1
