"""Turn one context of a kubeconfig into ClusterCredentials, saying exactly what is wrong when we cannot."""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.kube.credentials import (
    ClusterCredentials,
    EksTokenProvider,
    FileToken,
    StaticToken,
    TokenProvider,
    decode_ca,
)
from chalicelib.kube.errors import CredentialsError, InvalidKubeconfig

# Commands whose token we compute ourselves: Lambda has neither the AWS CLI nor aws-iam-authenticator installed,
# and `aws eks update-kubeconfig` writes exactly this exec entry.
_AWS_CLI = "aws"
_IAM_AUTHENTICATOR = "aws-iam-authenticator"
# A delegated (exec / auth-provider) token is asked for again this often, so plugins can rotate it.
DELEGATED_TOKEN_REFRESH_AFTER = 300.0


def parse_kubeconfig(
    text_or_dict: str | bytes | Mapping[str, Any], context: str | None = None, *, base_dir: str | Path | None = None
) -> ClusterCredentials:
    """See ``chalicelib.kube.auth.load_kubeconfig``."""
    config = _as_mapping(text_or_dict)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    contexts = _named(config, "contexts")
    if context is None:
        context = config.get("current-context") or None
        if context is None:
            raise InvalidKubeconfig(f"kubeconfig has no current-context; pass a context (available: {_list(contexts)})")
    if context not in contexts:
        raise InvalidKubeconfig(f'kubeconfig context "{context}" not found (available: {_list(contexts)})')
    ctx = contexts[context].get("context")
    if not isinstance(ctx, Mapping):
        raise InvalidKubeconfig(f'kubeconfig context "{context}": no "context" mapping')
    where = f'kubeconfig context "{context}"'
    cluster_name = ctx.get("cluster")
    clusters = _named(config, "clusters")
    if not cluster_name or cluster_name not in clusters:
        raise InvalidKubeconfig(f'{where}: cluster "{cluster_name}" not found (available: {_list(clusters)})')
    cluster = clusters[cluster_name].get("cluster")
    if not isinstance(cluster, Mapping):
        raise InvalidKubeconfig(f'{where}: cluster "{cluster_name}" has no "cluster" mapping')
    user: Mapping[str, Any] = {}
    user_name = ctx.get("user")
    if user_name:
        users = _named(config, "users")
        if user_name not in users:
            raise InvalidKubeconfig(f'{where}: user "{user_name}" not found (available: {_list(users)})')
        user = users[user_name].get("user") or {}
        if not isinstance(user, Mapping):
            raise InvalidKubeconfig(f'{where}: user "{user_name}" is not a mapping')
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise InvalidKubeconfig(f'{where}: cluster "{cluster_name}" has no server')
    cluster_where = f'{where}: cluster "{cluster_name}"'
    user_where = f'{where}: user "{user_name}"'
    ca = _data_or_file(cluster, "certificate-authority", base, cluster_where)
    cert = _data_or_file(user, "client-certificate", base, user_where)
    key = _data_or_file(user, "client-key", base, user_where)
    try:
        return ClusterCredentials(
            server=server.rstrip("/"),
            ca_data=decode_ca(ca, cluster_where) if ca is not None else None,
            token_provider=_token_provider(config, context, user, base, user_where),
            client_cert=cert,
            client_key=key,
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            name=context,
            tls_server_name=cluster.get("tls-server-name") or None,
            proxy_url=cluster.get("proxy-url") or None,
        )
    except InvalidKubeconfig:
        raise
    except CredentialsError as exc:
        raise InvalidKubeconfig(f"{where}: {exc}") from exc


def _as_mapping(text_or_dict: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(text_or_dict, Mapping):
        return text_or_dict
    import yaml

    try:
        # libyaml's parser where PyYAML was built with it (its wheels are): the same safe loading, ~10x faster than
        # the pure-Python one, which every backup paid for its cluster's kubeconfig.
        config = yaml.load(text_or_dict, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        # Only the problem and position: the parser's own message quotes the offending line, which may hold a token.
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InvalidKubeconfig(f"kubeconfig is not valid YAML{at}: {problem}") from exc
    if not isinstance(config, Mapping):
        raise InvalidKubeconfig(f"kubeconfig must be a mapping, got {type(config).__name__}")
    return config


def _named(config: Mapping[str, Any], section: str) -> dict[str, Mapping[str, Any]]:
    entries = config.get(section) or []
    if not isinstance(entries, list):
        raise InvalidKubeconfig(f'kubeconfig "{section}" must be a list')
    named: dict[str, Mapping[str, Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise InvalidKubeconfig(f"kubeconfig {section}[{index}] has no name")
        named[str(entry["name"])] = entry
    return named


def _list(named: Mapping[str, Any]) -> str:
    return ", ".join(f'"{name}"' for name in named) or "none"


def _data_or_file(section: Mapping[str, Any], key: str, base: Path, where: str) -> bytes | None:
    """``<key>-data`` (base64) wins over ``<key>`` (a file path), as in client-go."""
    data = section.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode("".join(str(data).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKubeconfig(f"{where}: {key}-data is not valid base64") from exc
    path = section.get(key)
    if path:
        return _read(base / os.path.expanduser(str(path)), f"{where}: {key}")
    return None


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidKubeconfig(f'{where}: cannot read "{path}": {exc.strerror}') from exc


def _token_provider(
    config: Mapping[str, Any], context: str, user: Mapping[str, Any], base: Path, where: str
) -> TokenProvider | None:
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("tokenFile"):
        path = base / os.path.expanduser(str(user["tokenFile"]))
        _read(path, f"{where}: tokenFile")  # fail now, not at the first request
        return FileToken(path)
    if user.get("username") or user.get("password"):
        raise InvalidKubeconfig(f"{where}: basic authentication (username/password) is not supported")
    exec_config = user.get("exec")
    if isinstance(exec_config, Mapping):
        eks = _native_eks_exec(exec_config)
        if eks is not None:
            return eks
        return DelegatedToken(config, context, f'{where}: exec "{exec_config.get("command")}"')
    if user.get("auth-provider"):
        provider = user["auth-provider"]
        name = provider.get("name") if isinstance(provider, Mapping) else None
        return DelegatedToken(config, context, f'{where}: auth-provider "{name}"')
    return None


def _flag(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _subcommand(args: list[str], command: str) -> str | None:
    if command not in args:
        return None
    rest = args[args.index(command) + 1 :]
    return rest[0] if rest else None


def _native_eks_exec(exec_config: Mapping[str, Any]) -> EksTokenProvider | None:
    """An EksTokenProvider for ``aws eks get-token`` / ``aws-iam-authenticator token``; None for anything else.

    We sign with the runtime's own AWS identity (the Lambda role); an entry that assumes another role
    (``--role-arn``/``-r``) or names a profile is left to the plugin, because only it knows how to honour that.
    """
    command = os.path.basename(str(exec_config.get("command") or ""))
    args = [str(arg) for arg in exec_config.get("args") or []]
    env = {str(e.get("name")): str(e.get("value")) for e in exec_config.get("env") or [] if isinstance(e, Mapping)}
    if "AWS_PROFILE" in env or _flag(args, "--profile"):
        return None
    if command == _AWS_CLI and _subcommand(args, "eks") == "get-token":
        cluster = _flag(args, "--cluster-name", "--cluster-id")
        role = _flag(args, "--role-arn")
    elif command == _IAM_AUTHENTICATOR and args[:1] == ["token"]:
        cluster = _flag(args, "-i", "--cluster-id")
        role = _flag(args, "-r", "--role")
    else:
        return None
    if not cluster or role:
        return None
    region = _flag(args, "--region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    import botocore.session

    sts = botocore.session.get_session().create_client("sts", region_name=region or None)
    return EksTokenProvider(sts, cluster)


class DelegatedToken:
    """A token from an exec plugin or auth-provider, obtained through the official client's kubeconfig loader."""

    def __init__(self, config: Mapping[str, Any], context: str, where: str) -> None:
        import copy
        import threading

        self._config = copy.deepcopy(dict(config))
        self._context = context
        self._where = where
        self._lock = threading.Lock()
        self._token: str | None = None
        self._fetched_at = 0.0

    def token(self) -> str:
        with self._lock:
            now = time.monotonic()
            if self._token is None or now - self._fetched_at >= DELEGATED_TOKEN_REFRESH_AFTER:
                self._token, self._fetched_at = self._fetch(), now
            return self._token

    def _fetch(self) -> str:
        from kubernetes.client.configuration import Configuration
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader

        configuration = Configuration()
        try:
            loader = KubeConfigLoader(self._config, active_context=self._context)  # type: ignore[no-untyped-call]
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError, ValueError, KeyError) as exc:
            raise CredentialsError(f"{self._where}: {exc}") from exc
        bearer = configuration.api_key.get("BearerToken") or ""
        token = bearer.removeprefix("Bearer ").strip()
        if not token:
            raise CredentialsError(f"{self._where}: produced no bearer token (client certificates are not supported)")
        return token

    def __repr__(self) -> str:
        return f"DelegatedToken({self._where!r})"
