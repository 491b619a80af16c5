"""Pushes a Helm chart with oras-py (PyPI's `oras`) as `helm push` lays it out, then pulls it
back and checks the bytes: the chart archive as a layer of Helm's content type, the chart's
metadata as the config of Helm's config type. Chunked and monolithic uploads.

Arguments: host:port, user, password, working directory (holding demo-1.0.0.tgz and
config.json), repository (project/name), tag.
"""

import os
import sys

import oras.auth.utils
import oras.client
import requests

CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
CONFIG = "application/vnd.cncf.helm.config.v1+json"


def push_token(client: "oras.client.OrasClient", host: str, repository: str) -> str:
    probe = requests.get(f"http://{host}/v2/")
    challenge = probe.headers["Www-Authenticate"] + f',scope="repository:{repository}:pull,push"'
    token = client.auth.request_token(oras.auth.utils.parse_auth_header(challenge))
    assert token, "a token for pull,push"
    return token


def main(host: str, user: str, password: str, workdir: str, repository: str, tag: str) -> None:
    os.chdir(workdir)
    client = oras.client.OrasClient(hostname=host, insecure=True)
    client.login(username=user, password=password, hostname=host)
    target = f"{host}/{repository}:{tag}"
    for chunked in (True, False):
        # oras-py keeps the first token it gets and answers every later 401 with it (it asks anew
        # only after a 403); a push's first request is a HEAD, whose challenge asks for pull, and
        # the token service answers a token without push with 401 insufficient_scope (Docker's
        # token spec, as distribution does). So the push starts with oras-py's own token request
        # for pull,push, as the Go oras asks for the scope it needs.
        client.auth.token = push_token(client, host, repository)
        pushed = client.push(
            target=target,
            files=[f"demo-1.0.0.tgz:{CHART}"],
            manifest_config=f"config.json:{CONFIG}",
            do_chunked=chunked,
            chunk_size=1024,
        )
        assert pushed.status_code == 201, (pushed.status_code, pushed.text)
    client.auth.token = None
    manifest = client.get_manifest(target)
    assert manifest["config"]["mediaType"] == CONFIG, manifest
    assert manifest["layers"][0]["mediaType"] == CHART, manifest
    out = os.path.join(workdir, "pulled")
    files = client.pull(target=target, outdir=out)
    with open(os.path.join(workdir, "demo-1.0.0.tgz"), "rb") as f:
        original = f.read()
    pulled = [p for p in files if p.endswith("demo-1.0.0.tgz")]
    assert pulled, files
    with open(pulled[0], "rb") as f:
        assert f.read() == original, "the pulled archive is the pushed one"
    print("oras-py: the chart went up and came back whole")


if __name__ == "__main__":
    main(*sys.argv[1:7])
