"""The production deployment (docker-compose.yml, docker/) against the Compose Specification and the project's rules.

Two checks that never depend on each other: ``docker compose config`` when a Compose v2 client
is on the machine, and, always, the file interpolated from ``docker/.env.example`` (the way Compose
does it, by :func:`interpolate`) and validated against the vendored Compose Specification schema
(tests/deploy/README.md says where it comes from). Then the invariants of this deployment: the
services, one Airflow configuration, two or more Celery workers, healthchecks, secrets only from
required variables and refused while they are placeholders, shared storage, volumes, dependencies,
the Dockerfile's sources and the PostgreSQL init script.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
POSTGRES_INIT = ROOT / "docker" / "postgres-init.sh"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.schema.json")
SCHEMA_README = Path(__file__).with_name("README.md")

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
REQUIRED_SERVICES = ("postgres", "redis", *AIRFLOW_SERVICES, "exchange")
#: Runs to completion; every other service without a profile runs until stopped.
ONE_SHOT = frozenset({"airflow-init"})
#: Must see the DAG files, the dataset specs and GOVDATA_HOME.
RUNS_DAGS = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker")

#: Settings that must be identical in every Airflow container (a different value in one of them
#: is a broken cluster: another database, broker, DAG folder or signing key).
SHARED_AIRFLOW_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS",
    "PYTHONPATH",
    "GOVDATA_HOME",
    "GOVDATA_CATALOG_URL",
    "GOVDATA_MASKING_KEY",
    "GOVDATA_DATASETS_DIR",
)
#: What the exchange shares with the Airflow containers: the same workspace, catalog and key.
SHARED_WITH_EXCHANGE = ("GOVDATA_HOME", "GOVDATA_CATALOG_URL", "GOVDATA_MASKING_KEY")

#: Environment names that hold a secret (a ``*_FILE`` setting names a file, not a secret).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN")
#: The only form a secret may take in the compose file: a required variable.
REQUIRED_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}")
PLACEHOLDER = "change-me"


# --- Compose interpolation --------------------------------------------------------------------


class InterpolationError(ValueError):
    """A ``$`` reference Compose would refuse, or one that reads an unset variable."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


def interpolate(text: str, env: Mapping[str, str], where: str = "") -> str:
    """``text`` with Compose's interpolation applied, reading variables from ``env``.

    ``$$`` is a literal ``$``; ``$VAR`` and ``${VAR}`` the value; ``${VAR:-default}`` (unset or
    empty) and ``${VAR-default}`` (unset) a default; ``${VAR:?message}`` and ``${VAR?message}`` an
    error naming the variable; ``${VAR:+other}`` and ``${VAR+other}`` the alternative when set.
    Defaults, messages and alternatives may hold references themselves. Stricter than Compose in
    one way: a plain reference to an unset variable is an error (Compose warns and uses "").
    """
    place = f"{where}: " if where else ""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 2, place)
            out.append(_substitute(text[i + 2 : end], env, where))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            name = match.group()
            if name not in env:
                raise InterpolationError(f"{place}variable {name} is not set (give it a value or a default)")
            out.append(env[name])
            i = match.end()
        else:  # a lone "$" before anything else stays, as in Compose
            out.append(char)
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int, place: str) -> int:
    """The index of the ``}`` that closes the ``${`` opened just before ``start``."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"{place}unterminated ${{ in {text!r}")


def _substitute(expression: str, env: Mapping[str, str], where: str) -> str:
    place = f"{where}: " if where else ""
    match = _BRACED.fullmatch(expression)
    if match is None:
        raise InterpolationError(
            f"{place}invalid interpolation ${{{expression}}}: expected ${{NAME}} or ${{NAME:-default}}"
        )
    name, op, arg = match.group("name", "op", "arg")
    value = env.get(name)
    if op is None:
        if value is None:
            raise InterpolationError(f"{place}variable {name} is not set (give it a value or a default)")
        return value
    present = bool(value) if op.startswith(":") else value is not None
    kind = op[-1]
    if kind == "-":
        return value if present and value is not None else interpolate(arg, env, where)
    if kind == "+":
        return interpolate(arg, env, where) if present else ""
    if present and value is not None:  # kind == "?"
        return value
    raise InterpolationError(f"{place}required variable {name} is missing a value: {arg}")


def interpolate_tree(node: Any, env: Mapping[str, str], path: tuple[str, ...] = ()) -> Any:
    """Every string value under ``node`` interpolated (mapping keys are not, as in Compose)."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env, (*path, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env, (*path, str(i))) for i, value in enumerate(node)]
    if isinstance(node, str):
        return interpolate(node, env, ".".join(path))
    return node


def url_password(value: str) -> str | None:
    """The password of the URL in ``value`` as written, ``${...}`` references intact (None: none)."""
    # Mask the references first: their messages may hold "/" or "@", which would cut the URL short.
    references: list[str] = []
    masked: list[str] = []
    i = 0
    while i < len(value):
        if value.startswith("$$", i):
            masked.append("$$")
            i += 2
        elif value.startswith("${", i):
            end = _closing_brace(value, i + 2, "")
            references.append(value[i : end + 1])
            masked.append(f"REF{len(references) - 1}REF")
            i = end + 1
        else:
            masked.append(value[i])
            i += 1
    password = urlsplit("".join(masked)).password
    if password is None:
        return None
    return re.sub(r"REF(\d+)REF", lambda m: references[int(m.group(1))], password)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a Compose ``--env-file`` sets: ``NAME=value`` lines, ``#`` comments."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name):
            raise ValueError(f"{path.name}:{number}: expected NAME=value, found {raw!r}")
        if name in values:
            raise ValueError(f"{path.name}:{number}: {name} is set twice")
        value = value.strip()
        if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[name] = value
    return values


# --- schema check -----------------------------------------------------------------------------


def _dotted(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(root)"


def _most_specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a oneOf/anyOf failure, the deepest error among its branches (where the mistake is)."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def schema_errors(document: Any, schema: Mapping[str, Any]) -> list[str]:
    """The schema's complaints about ``document``, each as ``dotted.path: message``."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [_most_specific(e) for e in validator.iter_errors(document)]
    paths = [tuple(e.absolute_path) for e in errors]
    messages = []
    for error, path in zip(errors, paths, strict=True):
        # A branch that failed deeper down also leaves its keys "unevaluated" on the parent: noise.
        if error.validator == "unevaluatedProperties" and any(
            len(other) > len(path) and other[: len(path)] == path for other in paths
        ):
            continue
        hint = " (unknown key)" if error.validator in ("additionalProperties", "unevaluatedProperties") else ""
        messages.append(f"{_dotted(path)}: {error.message}{hint}")
    return sorted(set(messages))


def check_compose_text(text: str, env: Mapping[str, str], schema: Mapping[str, Any]) -> list[str]:
    """Interpolate a compose file's text with ``env`` and validate it: the schema's complaints."""
    return schema_errors(interpolate_tree(_load_yaml(text), env), schema)


def _load_yaml(text: str) -> Any:
    # Round-trip through JSON: YAML merge keys share objects between services, and tests mutate them.
    return json.loads(json.dumps(yaml.safe_load(text)))


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The compose file as written, before interpolation."""
    loaded: dict[str, Any] = _load_yaml(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    """The compose file as Compose sees it with docker/.env.example."""
    resolved: dict[str, Any] = interpolate_tree(raw, example_env)
    return resolved


def services(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = doc["services"]
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever form the file uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in env.items()}


def unescape(text: str) -> str:
    """What the container receives for a string of the raw file in which the compose file wrote ``$$``."""
    return text.replace("$$", "$")


def command_words(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else shlex.split(value)


def healthcheck_text(service: Mapping[str, Any]) -> str:
    """The healthcheck command of a service of the interpolated file (``$$`` already made ``$``)."""
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def mounts(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A service's volumes in the long form: type, source, target."""
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found.append(volume)
            continue
        source, _, rest = volume.partition(":")
        target = rest.split(":")[0] if rest else source
        named = not source.startswith(("/", ".", "~", "$"))
        found.append({"type": "volume" if named else "bind", "source": source, "target": target})
    return found


def mounted_at(service: Mapping[str, Any], target: str) -> dict[str, Any] | None:
    return next((m for m in mounts(service) if m["target"].rstrip("/") == target.rstrip("/")), None)


def is_long_running(name: str, service: Mapping[str, Any]) -> bool:
    return name not in ONE_SHOT and not service.get("profiles")


def airflow_like(doc: Mapping[str, Any]) -> list[str]:
    """The Airflow services, plus any other service (e.g. the operator's cli) that runs Airflow."""
    return [
        name
        for name, service in services(doc).items()
        if name in AIRFLOW_SERVICES or "AIRFLOW__CORE__EXECUTOR" in environment(service)
    ]


def compose_client() -> list[str] | None:
    """The command of a Docker Compose v2 client: the docker plugin, else a standalone binary."""
    candidates = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            result = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = re.search(r"version v?(\d+)\.", result.stdout)
        if result.returncode == 0 and version and int(version.group(1)) >= 2:
            return command
    return None


def run_compose_config(command: list[str], env_file: Path) -> subprocess.CompletedProcess[str]:
    # Only what the client needs from the environment: a variable of the same name in the shell
    # would win over the env file and hide what the file says.
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "XDG_RUNTIME_DIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the Compose client, when there is one ----------------------------------------------------


@pytest.fixture(scope="module")
def client() -> list[str]:
    command = compose_client()
    if command is None:
        pytest.skip(
            "no Docker Compose v2 client here (`docker compose` or `docker-compose`); the schema tests cover the file"
        )
    return command


def test_compose_client_accepts_the_file(client: list[str]) -> None:
    result = run_compose_config(client, ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr


def test_compose_client_names_a_missing_secret(client: list[str], tmp_path: Path) -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    env_file = tmp_path / "missing.env"
    env_file.write_text("\n".join(line for line in lines if not line.startswith("REDIS_PASSWORD=")) + "\n")
    result = run_compose_config(client, env_file)
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr


# --- interpolation ------------------------------------------------------------------------------

ENV = {"A": "x", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "x"),
        ("$A/b", "x/b"),
        ("pre-${A}-post", "pre-x-post"),
        ("$$A", "$A"),
        ("$${A}", "${A}"),
        ("100$", "100$"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${A:-d}", "x"),
        ("${A:?needed}", "x"),
        ("${EMPTY?needed}", ""),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${A}}", "x"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("a,${A:+${A},}b", "a,x,b"),
        ("${UNSET:-http://h:8080/p}", "http://h:8080/p"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert interpolate(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("${UNSET:?set UNSET in .env}", ["UNSET", "set UNSET in .env"]),
        ("${EMPTY:?must not be empty}", ["EMPTY", "must not be empty"]),
        ("${UNSET?gone}", ["UNSET", "gone"]),
        ("${UNSET}", ["UNSET", "not set"]),
        ("$UNSET", ["UNSET", "not set"]),
        ("${A", ["unterminated"]),
        ("${1A}", ["invalid interpolation", "1A"]),
        ("${A:x}", ["invalid interpolation"]),
    ],
)
def test_interpolation_refuses_what_compose_refuses(text: str, names: list[str]) -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate(text, ENV, "services.web.environment.X")
    message = str(caught.value)
    assert message.startswith("services.web.environment.X: ")
    for name in names:
        assert name in message


def test_a_missing_required_variable_is_named_with_its_place(raw: dict[str, Any], example_env: dict[str, str]) -> None:
    env = {name: value for name, value in example_env.items() if name != "AIRFLOW_JWT_SECRET"}
    with pytest.raises(InterpolationError) as caught:
        interpolate_tree(raw, env)
    message = str(caught.value)
    assert "required variable AIRFLOW_JWT_SECRET is missing a value" in message
    assert ".environment.AIRFLOW__API_AUTH__JWT_SECRET: " in message


def test_env_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text("# comment\n\nA=1\nexport B = two words  # note\nC='q # kept'\nD=\"d\"\nE=\n", encoding="utf-8")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "q # kept", "D": "d", "E": ""}
    path.write_text("A=1\nA=2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"settings\.env:2: A is set twice"):
        read_env_file(path)
    path.write_text("not a setting\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"settings\.env:1: expected NAME=value"):
        read_env_file(path)


# --- the Compose Specification schema -----------------------------------------------------------


def test_vendored_schema_is_the_recorded_one() -> None:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest in SCHEMA_README.read_text(encoding="utf-8"), (
        f"{SCHEMA_FILE.name} changed (sha256 {digest}): record its source, version and checksum in {SCHEMA_README.name}"
    )


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any], schema: dict[str, Any]) -> None:
    assert schema_errors(compose, schema) == []


SMALL_COMPOSE = """\
services:
  web:
    image: ${WEB_IMAGE:-nginx:1.27}
    healthcheck:
      test: ["CMD", "true"]
"""


@pytest.mark.parametrize(
    ("good", "bad", "place"),
    [
        ("services:", "servces:", "(root): "),
        ("      test:", "      tset:", "services.web.healthcheck: "),
        ("    image:", "    imgae:", "services.web: "),
    ],
)
def test_a_compose_text_with_a_misspelt_key_is_refused_at_its_place(
    good: str, bad: str, place: str, schema: dict[str, Any]
) -> None:
    assert check_compose_text(SMALL_COMPOSE, {}, schema) == []
    errors = check_compose_text(SMALL_COMPOSE.replace(good, bad), {}, schema)
    misspelt = bad.strip().rstrip(":")
    assert [e for e in errors if e.startswith(place) and f"'{misspelt}'" in e and e.endswith("(unknown key)")], errors


def _rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "top-level key": (lambda d: _rename(d, "services", "servces"), "(root): ", "servces"),
    "healthcheck key": (
        lambda d: _rename(d["services"]["airflow-scheduler"]["healthcheck"], "test", "tset"),
        "services.airflow-scheduler.healthcheck: ",
        "tset",
    ),
    "service key": (
        lambda d: _rename(d["services"]["exchange"], "healthcheck", "helthcheck"),
        "services.exchange: ",
        "helthcheck",
    ),
    "depends_on condition": (
        lambda d: d["services"]["airflow-worker"]["depends_on"]["postgres"].update(condition="service_healty"),
        "services.airflow-worker.depends_on.postgres.condition: ",
        "service_healty",
    ),
    "replicas type": (
        lambda d: d["services"]["airflow-worker"]["deploy"].update(replicas=[2]),
        "services.airflow-worker.deploy.replicas: ",
        "[2]",
    ),
}


@pytest.mark.parametrize("mistake", MUTATIONS)
def test_schema_check_names_the_place_of_a_mistake(
    mistake: str, raw: dict[str, Any], example_env: dict[str, str], schema: dict[str, Any]
) -> None:
    mutate, place, word = MUTATIONS[mistake]
    document = json.loads(json.dumps(raw))
    mutate(document)
    errors = check_compose_text(yaml.safe_dump(document, allow_unicode=True), example_env, schema)
    assert errors, f"the schema accepted a compose file with a bad {mistake}"
    assert any(e.startswith(place) and word in e for e in errors), errors


# --- the deployment's own rules -----------------------------------------------------------------


def test_every_service_of_the_deployment_is_there(compose: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services(compose)]
    assert missing == []


def test_airflow_services_share_one_configuration(compose: dict[str, Any]) -> None:
    names = airflow_like(compose)
    assert set(AIRFLOW_SERVICES) <= set(names)
    reference = environment(services(compose)["airflow-scheduler"])
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for setting in SHARED_AIRFLOW_SETTINGS:
        assert reference.get(setting), f"airflow-scheduler: {setting} is not set"
        differing = [n for n in names if environment(services(compose)[n]).get(setting) != reference[setting]]
        assert differing == [], f"{setting} differs from airflow-scheduler's in {differing}"
    assert reference["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_workers_reach_the_api_servers_execution_api(compose: dict[str, Any]) -> None:
    apiserver = services(compose)["airflow-apiserver"]
    words = command_words(apiserver["command"])
    assert words[:2] == ["airflow", "api-server"]
    port = int(words[words.index("--port") + 1]) if "--port" in words else 8080
    url = urlsplit(environment(apiserver)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (url.hostname, url.port or 80, url.path) == ("airflow-apiserver", port, "/execution/")
    worker_deps = services(compose)["airflow-worker"]["depends_on"]
    assert worker_deps["airflow-apiserver"]["condition"] == "service_healthy"


def test_logging_config_class_resolves_from_the_pythonpath(compose: dict[str, Any]) -> None:
    env = environment(services(compose)["airflow-worker"])
    assert env["AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS"] == "dags.govdata_logging.LOGGING_CONFIG"
    dags_folder = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    assert dags_folder.name == "dags" and str(dags_folder.parent) in env["PYTHONPATH"].split(":")
    module = ROOT / "dags" / "govdata_logging.py"
    assert re.search(r"^LOGGING_CONFIG\b", module.read_text(encoding="utf-8"), re.MULTILINE)


def _postgres_url(url: str) -> tuple[str, str, str, int, str]:
    parts = urlsplit(url.removeprefix("db+"))
    return parts.scheme, parts.username or "", parts.hostname or "", parts.port or 5432, parts.path.lstrip("/")


def test_database_urls_use_the_installed_driver_and_the_databases_the_init_script_creates(
    compose: dict[str, Any], raw: dict[str, Any]
) -> None:
    env = environment(services(compose)["airflow-scheduler"])
    urls = {
        name: env[name]
        for name in (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
            "AIRFLOW__CELERY__RESULT_BACKEND",
            "GOVDATA_CATALOG_URL",
        )
    }
    script = POSTGRES_INIT.read_text(encoding="utf-8")
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", script))
    roles = set(re.findall(r"CREATE ROLE (\w+) LOGIN", script))
    for name, url in urls.items():
        # psycopg 3 is the installed PostgreSQL driver (the postgres extra); asyncpg and psycopg2 are not.
        scheme, user, host, port, database = _postgres_url(url)
        assert scheme == "postgresql+psycopg", f"{name}: driver {scheme}"
        assert host == "postgres" and port == 5432, f"{name}: {host}:{port}"
        assert user in roles and databases.get(database) == user, (
            f"{name}: {user}@{database} is not made by {POSTGRES_INIT.name}"
        )
    assert {_postgres_url(u)[4] for u in urls.values()} == set(databases) == {"airflow", "govdata"}

    postgres = services(compose)["postgres"]
    init_mount = next(m for m in mounts(postgres) if m["target"].startswith("/docker-entrypoint-initdb.d/"))
    assert (ROOT / init_mount["source"]).resolve() == POSTGRES_INIT
    # Each role's password reaches the init script under the name it reads, from the variable the URLs use.
    raw_postgres_env = environment(services(raw)["postgres"])
    raw_airflow_env = environment(services(raw)["airflow-scheduler"])
    for role, url_setting in (("airflow", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"), ("govdata", "GOVDATA_CATALOG_URL")):
        psql_var = re.search(rf"CREATE ROLE {role} LOGIN PASSWORD :'(\w+)'", script)
        assert psql_var, f"{POSTGRES_INIT.name} sets no password for {role}"
        shell_var = re.search(rf"{psql_var.group(1)}=\"\$(\w+)\"", script)
        assert shell_var, f"{POSTGRES_INIT.name}: {psql_var.group(1)} is not taken from the environment"
        password = url_password(raw_airflow_env[url_setting])
        assert password is not None, f"{url_setting} has no password"
        assert REQUIRED_REF.findall(raw_postgres_env[shell_var.group(1)]) == REQUIRED_REF.findall(password)


def test_broker_is_the_redis_service_with_its_password(compose: dict[str, Any], raw: dict[str, Any]) -> None:
    broker = urlsplit(environment(services(compose)["airflow-worker"])["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    raw_password = url_password(environment(services(raw)["airflow-worker"])["AIRFLOW__CELERY__BROKER_URL"])
    assert raw_password is not None, "the broker URL has no password"
    assert REQUIRED_REF.findall(raw_password) == REQUIRED_REF.findall(
        environment(services(raw)["redis"])["REDIS_PASSWORD"]
    )
    assert "--requirepass" in " ".join(services(compose)["redis"]["entrypoint"])


def test_at_least_two_celery_workers_and_they_can_be_scaled(compose: dict[str, Any]) -> None:
    workers = {
        name: service
        for name, service in services(compose).items()
        if command_words(service.get("command"))[:3] == ["airflow", "celery", "worker"]
    }
    assert workers, "no service runs `airflow celery worker`"
    replicas = sum(int((s.get("deploy") or {}).get("replicas", s.get("scale", 1))) for s in workers.values())
    assert replicas >= 2
    for name, service in workers.items():
        # `docker compose up --scale` refuses a fixed container name or a published host port.
        assert "container_name" not in service, name
        assert not service.get("ports"), name


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    expected = {
        "postgres": ["pg_isready"],
        "redis": ["ping"],
        "airflow-apiserver": ["/api/v2/monitor/health"],
        "airflow-scheduler": ["airflow jobs check", "--job-type SchedulerJob"],
        "airflow-dag-processor": ["airflow jobs check", "--job-type DagProcessorJob"],
        "airflow-triggerer": ["airflow jobs check", "--job-type TriggererJob"],
        "airflow-worker": [
            "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping",
            "celery@${HOSTNAME}",
        ],
        "exchange": ["/healthz"],
    }
    long_running = [name for name, service in services(compose).items() if is_long_running(name, service)]
    assert set(expected) == set(long_running), (
        "a long-running service was added or removed: say what its healthcheck runs"
    )
    for name in long_running:
        service = services(compose)[name]
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        assert isinstance(test, str) or test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test}"
        for part in expected[name]:
            assert part in healthcheck_text(service), f"{name}'s healthcheck does not run {part!r}"


def test_services_answer_their_healthchecks_where_they_listen(compose: dict[str, Any]) -> None:
    for name, command_port in (("airflow-apiserver", "--port"), ("exchange", "--port")):
        service = services(compose)[name]
        words = command_words(service["command"])
        port = words[words.index(command_port) + 1]
        assert f"127.0.0.1:{port}/" in healthcheck_text(service), name
        published = [p.rsplit(":", 1)[-1] if isinstance(p, str) else str(p["target"]) for p in service["ports"]]
        assert published == [port], name
    exchange = command_words(services(compose)["exchange"]["command"])
    assert exchange[:2] == ["govdata", "serve"]
    # Inside a container the default 127.0.0.1 would be unreachable from the published port.
    assert exchange[exchange.index("--host") + 1] == "0.0.0.0"


def test_dependencies_exist_are_met_the_right_way_and_have_no_cycle(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    graph: dict[str, set[str]] = {}
    for name, service in all_services.items():
        deps = service.get("depends_on") or {}
        deps = {target: {"condition": "service_started"} for target in deps} if isinstance(deps, list) else deps
        graph[name] = set(deps)
        for target, rule in deps.items():
            assert target in all_services, f"{name} depends on {target}, which is not a service"
            condition = rule.get("condition", "service_started")
            if condition == "service_healthy":
                assert all_services[target].get("healthcheck"), (
                    f"{name} waits for {target} to be healthy: it has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to complete: it runs until stopped"
    init_deps = all_services["airflow-init"]["depends_on"]
    assert {t: r["condition"] for t, r in init_deps.items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    for name in [*AIRFLOW_SERVICES, "exchange"]:
        if name != "airflow-init":
            assert all_services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", (
                name
            )
    # Compose refuses a dependency cycle; find it here with the names in it.
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        assert node not in visiting, f"dependency cycle: {' -> '.join([*visiting, node])}"
        if node in done:
            return
        visiting.append(node)
        for target in graph[node]:
            visit(target)
        visiting.pop()
        done.add(node)

    for node in graph:
        visit(node)


def test_named_volumes_are_declared_and_every_declared_one_is_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {m["source"] for s in services(compose).values() for m in mounts(s) if m.get("type") == "volume"}
    assert used - declared == set(), "named volumes used but not declared under volumes:"
    assert declared - used == set(), "volumes declared but used by no service"


def test_bind_mounts_come_from_the_repository(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for mount in mounts(service):
            if mount.get("type") == "bind":
                source = mount["source"]
                assert not source.startswith("/"), f"{name}: absolute host path {source} in the default configuration"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist in the repository"
                assert mount.get("read_only"), f"{name}: {source} is mounted writable"


def test_shared_storage_dags_and_specs_are_mounted_where_they_are_needed(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    env = environment(all_services["airflow-scheduler"])
    home = env["GOVDATA_HOME"]
    home_sources = set()
    for name in [*AIRFLOW_SERVICES, "exchange"]:
        mount = mounted_at(all_services[name], home)
        assert mount is not None, f"{name} does not mount GOVDATA_HOME ({home})"
        assert mount.get("type") == "volume" and not mount.get("read_only"), name
        home_sources.add(mount["source"])
    assert len(home_sources) == 1, f"GOVDATA_HOME is not one shared volume: {home_sources}"
    for name in RUNS_DAGS:
        for setting in ("AIRFLOW__CORE__DAGS_FOLDER", "GOVDATA_DATASETS_DIR"):
            assert mounted_at(all_services[name], env[setting]), f"{name} does not mount {setting} ({env[setting]})"
    exchange = environment(all_services["exchange"])
    for setting in SHARED_WITH_EXCHANGE:
        assert exchange.get(setting) == env[setting], f"the exchange's {setting} differs from Airflow's"


def test_every_govdata_service_reads_the_same_optional_env_file(compose: dict[str, Any]) -> None:
    def env_files(service: Mapping[str, Any]) -> list[tuple[str, bool]]:
        entries = service.get("env_file") or []
        entries = [entries] if isinstance(entries, str | dict) else entries
        return [(e, True) if isinstance(e, str) else (e["path"], e.get("required", True)) for e in entries]

    names = [*airflow_like(compose), "exchange"]
    found = {name: env_files(services(compose)[name]) for name in names}
    assert len({tuple(files) for files in found.values()}) == 1, found
    for name, files in found.items():
        assert files, f"{name} reads no env file"
        for path, required in files:
            # Connection URLs are the operator's: the file is optional, so a fresh checkout starts.
            assert not required, f"{name}: {path} must be `required: false`"


def test_all_govdata_services_run_one_image_built_once(compose: dict[str, Any]) -> None:
    names = [*airflow_like(compose), "exchange"]
    images = {services(compose)[name]["image"] for name in names}
    assert len(images) == 1, images
    builders = [name for name, service in services(compose).items() if service.get("build")]
    assert builders == ["airflow-init"], "build the image in one service (the others would rebuild it)"


# --- secrets ------------------------------------------------------------------------------------


def _env_blocks(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    for name, service in services(doc).items():
        yield f"services.{name}", environment(service)
    for key, value in doc.items():
        if key.startswith("x-") and isinstance(value, dict):
            yield key, {k: str(v) for k, v in value.items() if not isinstance(v, dict | list)}
            if isinstance(value.get("environment"), dict):
                yield f"{key}.environment", environment(value)


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}.{i}")
    elif isinstance(node, str):
        yield path, node


def required_variables(raw_text: str) -> set[str]:
    return set(REQUIRED_REF.findall(raw_text))


def test_secrets_come_only_from_required_variables(raw: dict[str, Any]) -> None:
    for where, env in _env_blocks(raw):
        for name, value in env.items():
            if SECRET_NAME.search(name) and not name.endswith("_FILE"):
                assert REQUIRED_REF.fullmatch(value), f"{where}.{name} must be ${{VARIABLE:?message}}, not {value!r}"
    checked = 0
    for where, value in _strings(raw):
        if re.match(r"[a-z][a-z0-9+.-]*://", value):
            password = url_password(value)
            if password is not None:
                checked += 1
                assert REQUIRED_REF.fullmatch(password), (
                    f"{where}: the password in {value!r} must be ${{VARIABLE:?message}}"
                )
    assert checked >= 5, "no URL password found: the check above checked nothing"


def test_required_variables_never_get_a_default(raw: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for name in required_variables(text):
        defaults = re.findall(rf"\$\{{{name}(:?[-+])", text)
        assert defaults == [], f"{name} is required somewhere and has a default elsewhere"
        plain = re.findall(rf"(?<!\$)\$(?:\{{{name}\}}|{name}\b)", text)
        assert plain == [], f"{name} is read without :? somewhere"


def test_no_secret_value_is_written_in_the_compose_file(example_env: dict[str, str]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for name in required_variables(text):
        assert example_env[name] not in text, f"the example value of {name} appears in {COMPOSE_FILE.name}"
    # Only the placeholder guards may mention the placeholder.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert all(f"*{PLACEHOLDER}*" in line or PLACEHOLDER not in line for line in lines), (
        f"a {PLACEHOLDER} value is written in the compose file"
    )


def test_env_example_documents_every_variable_with_its_default(example_env: dict[str, str]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    referenced = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    documented = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE))
    assert referenced - set(documented) == set(), f"not in {ENV_EXAMPLE.name}"
    assert set(documented) - referenced == set(), f"in {ENV_EXAMPLE.name} but never read by {COMPOSE_FILE.name}"
    required = required_variables(text)
    for name in required:
        assert PLACEHOLDER in example_env.get(name, ""), f"{name} is required: give it a {PLACEHOLDER} placeholder"
    for name in referenced - required:
        assert name not in example_env, f"{name} is optional: leave it commented out so its default applies"
        defaults = set(re.findall(rf"\$\{{{name}:?-([^}}$]*)\}}", text))
        assert defaults == {documented[name].strip()}, (
            f"{name}: default {defaults} in the compose file, {documented[name]!r} documented"
        )


def _guarded(service: Mapping[str, Any]) -> set[str]:
    """The environment names a service's start-up script refuses while empty or a placeholder."""
    script = unescape(" ".join([*command_words(service.get("entrypoint")), *command_words(service.get("command"))]))
    if f"*{PLACEHOLDER}*" not in script:
        return set()
    return {name for match in re.findall(r"for name in ([A-Za-z0-9_ ]+); do", script) for name in match.split()}


def test_placeholder_secrets_are_refused_at_start(raw: dict[str, Any], example_env: dict[str, str]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    refused: set[str] = set()
    for service in services(raw).values():
        env = environment(service)
        for name in _guarded(service):
            assert name in env, f"the start-up check reads {name}, which the service does not set"
            refused |= set(REQUIRED_REF.findall(env[name]))
    assert required_variables(text) - refused == set(), "required secrets nobody refuses while still a placeholder"


# --- the image ------------------------------------------------------------------------------------


def _dockerfile(compose: dict[str, Any]) -> tuple[Path, list[tuple[str, str]]]:
    build = services(compose)["airflow-init"]["build"]
    context = (ROOT / build.get("context", ".")).resolve()
    path = context / build.get("dockerfile", "Dockerfile")
    assert path.is_file(), f"{path} does not exist"
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return context, instructions


def test_dockerfile_copies_only_what_exists(compose: dict[str, Any]) -> None:
    context, instructions = _dockerfile(compose)
    for keyword, rest in instructions:
        if keyword in ("COPY", "ADD"):
            words = shlex.split(rest)
            if any(w.startswith("--from=") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            assert sources, f"{keyword} {rest}"
            for source in sources:
                assert (context / source).exists(), f"{keyword} {source}: not in the build context"


def test_image_installs_the_lock_as_a_non_root_user(compose: dict[str, Any]) -> None:
    _, instructions = _dockerfile(compose)
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert [rest for keyword, rest in instructions if keyword == "FROM"][-1].startswith("${PYTHON_IMAGE}")
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must end as a non-root user"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^UV_VERSION \?= {re.escape(args['UV_VERSION'])}$", makefile, re.MULTILINE), (
        "uv differs from the Makefile's"
    )
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "--frozen" in runs and "--require-hashes" in runs, "install exactly the lock, checked by hash"
    extras = set(re.findall(r"--extra (\S+)", runs))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert extras and extras <= set(pyproject["project"]["optional-dependencies"]), extras
    assert {"airflow", "postgres"} <= extras
    env = environment(services(compose)["airflow-scheduler"])
    copies = {shlex.split(rest)[-1].rstrip("/") for keyword, rest in instructions if keyword == "COPY"}
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] in copies and env["GOVDATA_DATASETS_DIR"] in copies
