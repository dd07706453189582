"""ef_proxy in tests: the real templates, rendered as the nginx image renders them, run by
Debian's nginx on loopback.

The image (proxy/Dockerfile) sources ``15-echoforge.envsh`` and then runs its template step;
``render`` does the same with ``tests/proxy/render.sh``, a copy of that step. ``nginx_conf``
writes the top-level configuration the image ships (temp paths, mime types, ``conf.d/*.conf``),
plus, when asked, the frontend image's server (frontend/nginx.conf, serving ``frontend/``) and
other servers of the caller's (bench/proxy_cache_hit.py adds a plain static one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.utils.procs import REPO, Server, free_port, start_server

PROXY = REPO / "proxy"
ENVSH = PROXY / "15-echoforge.envsh"
RENDER = Path(__file__).with_name("render.sh")
TEMPLATES = sorted(PROXY.glob("*.template"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render(out: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Render the templates into ``out/conf.d`` with ``env`` as the container's environment."""
    templates = out / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    for template in TEMPLATES:
        shutil.copy(template, templates / template.name)
    (out / "conf.d").mkdir(exist_ok=True)
    container_env = {
        "PATH": os.environ["PATH"],
        "NGINX_ENVSUBST_FILTER": "^EF_",  # as proxy/Dockerfile sets it
        "NGINX_ENVSUBST_TEMPLATE_DIR": str(templates),
        "NGINX_ENVSUBST_OUTPUT_DIR": str(out / "conf.d"),
        **env,
    }
    # Sourced, as the image's entrypoint does with *.envsh; its exports reach the next step.
    return subprocess.run(
        ["sh", "-c", f'. "{ENVSH}" && "{RENDER}"'],
        env=container_env,
        capture_output=True,
        text=True,
        check=False,
    )


def frontend_conf(out: Path, port: int) -> Path:
    """The frontend image's own server (frontend/nginx.conf) on ``port``, serving frontend/.

    A header marks its answers, so tests can tell which upstream the proxy asked."""
    conf = (REPO / "frontend" / "nginx.conf").read_text()
    assert "    listen 8080;" in conf and "    root /usr/share/nginx/html;" in conf
    conf = conf.replace("    listen 8080;", f"    listen 127.0.0.1:{port};")
    conf = conf.replace(
        "    root /usr/share/nginx/html;",
        f"    root {REPO / 'frontend'};\n    add_header X-Test-Upstream ef_frontend always;",
    )
    path = out / "frontend.conf"
    path.write_text(conf)
    return path


def nginx_conf(
    out: Path, *, frontend_port: int | None = None, includes: Sequence[Path] = ()
) -> Path:
    """The image's nginx.conf around ``conf.d/``; with ``frontend_port``, the frontend too, and
    ``includes`` (more server blocks) in the same http context: the same workers and settings."""
    extra = [*includes]
    if frontend_port is not None:
        extra.insert(0, frontend_conf(out, frontend_port))
    more = "".join(f"    include {path};\n" for path in extra)
    user = "user root root;\n" if os.getuid() == 0 else ""
    conf = out / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {out}/nginx.pid;\nerror_log {out}/error.log notice;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    client_body_temp_path {out}/client_temp;\n"
        f"    proxy_temp_path {out}/proxy_temp;\n"
        f"    fastcgi_temp_path {out}/fastcgi_temp;\n"
        f"    uwsgi_temp_path {out}/uwsgi_temp;\n"
        f"    scgi_temp_path {out}/scgi_temp;\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {out}/access.log;\n"
        "    sendfile on;\n"
        "    keepalive_timeout 65;\n"
        "    include conf.d/*.conf;\n"
        f"{more}"
        "}\n"
    )
    return conf


def start_proxy(
    out: Path,
    env: Mapping[str, str],
    *,
    frontend_port: int | None = None,
    includes: Sequence[Path] = (),
) -> tuple[Server, dict[str, int]]:
    """Render, check (``nginx -t``) and start nginx; returns it and its ports (http, tls)."""
    ports = {"http": free_port(), "tls": free_port()}
    full_env = {
        "EF_PROXY_LISTEN": f"127.0.0.1:{ports['http']}",
        "EF_PROXY_TLS_LISTEN": f"127.0.0.1:{ports['tls']}",
        **env,
    }
    rendered = render(out, full_env)
    if rendered.returncode != 0:
        raise RuntimeError(f"rendering failed: {rendered.stderr}")
    conf = nginx_conf(out, frontend_port=frontend_port, includes=includes)
    check = subprocess.run(
        [NGINX, "-t", "-p", str(out), "-c", str(conf)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {check.stderr}")
    server = start_server(
        "ef_proxy",
        [NGINX, "-p", str(out), "-c", str(conf), "-g", "daemon off;"],
        port=ports["http"],
        log_dir=out / "logs",
    )
    return server, ports
