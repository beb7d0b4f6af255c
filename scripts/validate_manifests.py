#!/usr/bin/env python3
"""Offline checks of fresco's deployment files (run by
scripts/validate-manifests.sh, which installs what this needs).

1. Renders every kustomization under deploy/kubernetes with a small
   renderer of the kustomize features those files use: `resources` (files
   and folders), `namespace`, and `patches` of JSON6902 operations on a
   target kind and name. Anything else in a kustomization is refused, so
   the renderer cannot silently disagree with kustomize. Where `kubectl`
   (kustomize v5 inside) or `kustomize` is on PATH, each kustomization is
   rendered by it too and the two renderings must hold the same objects.
2. Validates every rendered object: Kubernetes kinds against the
   Kubernetes 1.30 JSON schemas (kubernetes-validate's strict ones: an
   unknown field is an error, as `kubectl apply`'s strict field validation
   makes it), KEDA kinds against the openAPIV3Schema of the CRDs vendored
   under deploy/kubernetes/schemas (made strict the same way).
3. Checks references inside each complete deployment (farm, try-out):
   ConfigMaps, PersistentVolumeClaims, ServiceAccounts, Secrets, KEDA
   targets and TriggerAuthentications named by an object exist; every
   Deployment's selector selects its pods; every Service selects pods.
4. Checks docker-compose.yml's structure: each service has an image or a
   build whose Dockerfile and target stage exist, named volumes are
   declared, depends_on names services, profiles are lists of names, GPU
   reservations are well formed.

`--queries DATABASE_URL` instead runs each pool's KEDA query on a scratch
database made on that Postgres (migrated with migrations/postgres, filled
with known tasks) and checks it counts exactly the queued tasks of jobs not
paused and the running tasks of the models its pool serves.

Prints nothing and exits 0 when all is well; otherwise prints one line per
problem, naming the file, and exits 1. `--self-test` breaks copies of the
files in a temporary folder in several ways and fails unless each broken
copy is refused.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.30"
# Deployments whose references must all resolve inside their rendering.
COMPLETE = {"farm", "try-out"}
# Secrets the operator creates before applying `farm` (see the README).
OPERATOR_SECRETS = {"fresco-secrets", "fresco-worker-token"}
# Secrets the try-out's keys Job creates through the Kubernetes API.
JOB_MADE_SECRETS = {"fresco-worker-token", "fresco-admin-key"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding",
                  "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "ClusterTriggerAuthentication"}
# libyaml's loader when PyYAML has it: several times faster.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "patches"}


class Problem(Exception):
    """A problem with one file, reported as `file: message`."""

    def __init__(self, path: Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def report(self, root: Path) -> str:
        return f"{rel(self.path, root)}: {self.message}"


@dataclass
class Obj:
    """A rendered object and where it came from."""

    body: dict
    source: Path
    patched_by: list[Path] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        meta = self.body.get("metadata") or {}
        return (self.body.get("kind", "?"), meta.get("namespace", ""),
                meta.get("name", "?"))

    def where(self, root: Path) -> str:
        text = rel(self.source, root)
        if self.patched_by:
            text += " (patched by " + ", ".join(rel(p, root) for p in self.patched_by) + ")"
        kind, _, name = self.key
        return f"{text}: {kind} {name}"


def rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def load_yaml_docs(path: Path) -> list[dict]:
    try:
        docs = [d for d in yaml.load_all(path.read_text(), Loader=LOADER) if d is not None]
    except (OSError, yaml.YAMLError) as err:
        raise Problem(path, f"cannot read YAML: {err}") from err
    for doc in docs:
        if not isinstance(doc, dict):
            raise Problem(path, "a document is not a mapping")
    return docs


# ---- rendering -----------------------------------------------------------

def render(folder: Path) -> list[Obj]:
    """The objects kustomization.yaml in `folder` makes."""
    kfile = folder / "kustomization.yaml"
    docs = load_yaml_docs(kfile)
    if len(docs) != 1:
        raise Problem(kfile, "must hold exactly one document")
    k = docs[0]
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise Problem(kfile, f"uses {sorted(unknown)}, which this renderer does not support")
    objs: list[Obj] = []
    for entry in k.get("resources") or []:
        target = (folder / entry)
        if target.is_dir():
            objs.extend(render(target))
        elif target.is_file():
            objs.extend(Obj(doc, target) for doc in load_yaml_docs(target))
        else:
            raise Problem(kfile, f"resource {entry!r} does not exist")
    seen: set[tuple[str, str, str]] = set()
    for obj in objs:
        if obj.key in seen:
            raise Problem(kfile, f"two objects are {obj.key}")
        seen.add(obj.key)
    for patch in k.get("patches") or []:
        apply_patch(kfile, patch, objs)
    if "namespace" in k:
        for obj in objs:
            set_namespace(obj.body, k["namespace"])
    return objs


def apply_patch(kfile: Path, patch: dict, objs: list[Obj]) -> None:
    target = patch.get("target") or {}
    if set(patch) != {"target", "patch"} or set(target) - {"kind", "name"}:
        raise Problem(kfile, "only patches of a `patch` (JSON6902) on a target kind and name are supported")
    matches = [o for o in objs if o.key[0] == target.get("kind") and o.key[2] == target.get("name")]
    if not matches:
        raise Problem(kfile, f"patch target {target} matches nothing")
    try:
        ops = yaml.load(patch["patch"], Loader=LOADER)
    except yaml.YAMLError as err:
        raise Problem(kfile, f"patch is not YAML: {err}") from err
    if not isinstance(ops, list):
        raise Problem(kfile, "only JSON6902 patches (a list of operations) are supported")
    for obj in matches:
        for op in ops:
            try:
                json_patch_op(obj.body, op)
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise Problem(kfile, f"patch {op.get('op')} {op.get('path')} on {obj.key}: {err!r}") from err
        obj.patched_by.append(kfile)


def json_patch_op(doc: dict, op: dict) -> None:
    """One RFC 6902 add, replace or remove."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[index] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[index]
        else:
            raise ValueError(f"unsupported op {kind}")
    else:
        if kind in ("replace", "remove") and last not in parent:
            raise KeyError(last)
        if kind in ("add", "replace"):
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        else:
            raise ValueError(f"unsupported op {kind}")


def set_namespace(body: dict, namespace: str) -> None:
    """kustomize's namespace transformer, for the kinds used here."""
    if body.get("kind") in CLUSTER_SCOPED:
        return
    body.setdefault("metadata", {})["namespace"] = namespace
    if body.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
        for subject in body.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace


def reference_renderer() -> list[str] | None:
    """The real kustomize's command line, if one is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def compare_with_kustomize(folder: Path, objs: list[Obj], command: list[str], root: Path) -> list[str]:
    kfile = rel(folder / "kustomization.yaml", root)
    try:
        out = subprocess.run([*command, str(folder)], capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return [f"{kfile}: {' '.join(command)} failed: {err}"]
    if out.returncode != 0:
        return [f"{kfile}: {' '.join(command)} refused it: {out.stderr.strip()}"]
    theirs = {canonical(d): d for d in yaml.load_all(out.stdout, Loader=LOADER) if d}
    ours = {canonical(o.body): o.body for o in objs}
    problems = []
    for text in set(theirs) ^ set(ours):
        side = "kustomize" if text in theirs else "this renderer"
        body = theirs.get(text) or ours[text]
        problems.append(f"{kfile}: only {side} renders {body.get('kind')} "
                        f"{(body.get('metadata') or {}).get('name')} this way")
    return problems


def canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True)


# ---- schemas ---------------------------------------------------------------

def strict(schema):
    """A CRD schema that, like kubectl's strict field validation, refuses
    fields it does not name (except where it keeps unknown fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crd_validators(schema_dir: Path) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    for path in sorted(schema_dir.glob("*.yaml")):
        for crd in load_yaml_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's to check: ObjectMeta.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                api = f"{spec['group']}/{version['name']}"
                validators[(api, spec["names"]["kind"])] = jsonschema.Draft7Validator(schema)
    return validators


def schema_problems(obj: Obj, crds: dict, root: Path) -> list[str]:
    body = obj.body
    crd = crds.get((body.get("apiVersion"), body.get("kind")))
    if crd is not None:
        problems = [f"{obj.where(root)}: {path_of(e)}: {e.message}"
                    for e in sorted(crd.iter_errors(body), key=lambda e: list(e.path))]
        if body.get("kind") == "ScaledObject" and not problems:
            problems = [f"{obj.where(root)}: {p}" for p in trigger_problems(body)]
        return problems
    validator = kubernetes_validator(str(body.get("apiVersion")), str(body.get("kind")))
    if validator is None:
        return [f"{obj.where(root)}: no Kubernetes {KUBERNETES_VERSION} or KEDA schema "
                f"for {body.get('kind')} {body.get('apiVersion')}"]
    return [f"{obj.where(root)}: {path_of(e)}: {e.message}"
            for e in sorted(validator.iter_errors(body), key=lambda e: list(e.path))]


@functools.cache
def kubernetes_validator(api_version: str, kind: str):
    """A validator of every error (kubernetes_validate.validate stops at
    the first) against kubernetes-validate's strict schema of `kind`, laid
    out as that package lays it out."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict"
    try:
        schema = kubernetes_validate.utils.schema_contents(
            f"{folder}/{kind.lower()}-{api}.json", KUBERNETES_VERSION)
    except FileNotFoundError:
        return None
    definitions = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json",
                                                            KUBERNETES_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


# What KEDA v2.20's postgresql scaler reads from a trigger's metadata (its
# postgreSQLMetadata); the CRD lets metadata hold any string, so a
# misspelt key would otherwise pass unnoticed and be ignored by KEDA.
POSTGRESQL_METADATA = {"query", "targetQueryValue", "activationTargetQueryValue",
                       "host", "port", "userName", "dbName", "sslmode",
                       "connectionFromEnv", "passwordFromEnv"}


def trigger_problems(body: dict) -> list[str]:
    problems = []
    for i, trigger in enumerate(body["spec"].get("triggers") or []):
        if trigger.get("type") != "postgresql":
            continue
        where = f"spec.triggers.{i}.metadata"
        meta = trigger.get("metadata") or {}
        unknown = sorted(set(meta) - POSTGRESQL_METADATA)
        if unknown:
            problems.append(f"{where}: the postgresql scaler reads no {', '.join(unknown)}")
        if not meta.get("query"):
            problems.append(f"{where}: the postgresql scaler needs a query")
        for key in ("targetQueryValue", "activationTargetQueryValue"):
            try:
                float(meta.get(key, "0"))
            except ValueError:
                problems.append(f"{where}.{key}: not a number")
        if not (trigger.get("authenticationRef") or meta.get("connectionFromEnv") or meta.get("host")):
            problems.append(f"spec.triggers.{i}: the postgresql scaler needs a connection "
                            "(authenticationRef, connectionFromEnv or host)")
    return problems


def path_of(err) -> str:
    return ".".join(str(p) for p in err.path) or "(top)"


# ---- references ------------------------------------------------------------

def pod_specs(body: dict) -> list[dict]:
    spec = body.get("spec") or {}
    template = spec.get("template") or {}
    return [template.get("spec") or {}] if template else []


def reference_problems(objs: list[Obj], name: str, root: Path) -> list[str]:
    have = {(o.key[0], o.key[2]) for o in objs}
    secrets = {n for k, n in have if k == "Secret"} | OPERATOR_SECRETS
    if any(o.key == ("Job", o.key[1], "fresco-keys") for o in objs):
        secrets |= JOB_MADE_SECRETS
    problems = []

    def need(obj: Obj, kind: str, ref: str | None, known=None) -> None:
        if ref is None:
            return
        if not (ref in known if known is not None else (kind, ref) in have):
            problems.append(f"{obj.where(root)}: names {kind} {ref}, which {name} does not make")

    pods = []
    for obj in objs:
        body = obj.body
        for spec in pod_specs(body):
            pods.append((obj, (body.get("spec", {}).get("template", {}).get("metadata") or {}).get("labels") or {}))
            need(obj, "ServiceAccount", spec.get("serviceAccountName"))
            for vol in spec.get("volumes") or []:
                need(obj, "PersistentVolumeClaim", (vol.get("persistentVolumeClaim") or {}).get("claimName"))
                need(obj, "ConfigMap", (vol.get("configMap") or {}).get("name"))
                need(obj, "Secret", (vol.get("secret") or {}).get("secretName"), secrets)
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                for src in c.get("envFrom") or []:
                    need(obj, "ConfigMap", (src.get("configMapRef") or {}).get("name"))
                    need(obj, "Secret", (src.get("secretRef") or {}).get("name"), secrets)
                for env in c.get("env") or []:
                    frm = env.get("valueFrom") or {}
                    need(obj, "ConfigMap", (frm.get("configMapKeyRef") or {}).get("name"))
                    need(obj, "Secret", (frm.get("secretKeyRef") or {}).get("name"), secrets)
        if body.get("kind") == "ScaledObject":
            target = body["spec"]["scaleTargetRef"]
            need(obj, target.get("kind", "Deployment"), target.get("name"))
            for trigger in body["spec"].get("triggers") or []:
                need(obj, "TriggerAuthentication", (trigger.get("authenticationRef") or {}).get("name"))
        if body.get("kind") == "TriggerAuthentication":
            for ref in body["spec"].get("secretTargetRef") or []:
                need(obj, "Secret", ref.get("name"), secrets)
        if body.get("kind") in ("RoleBinding",):
            need(obj, body["roleRef"]["kind"], body["roleRef"]["name"])
    problems += selector_problems(objs, pods, root)
    return problems


def selector_problems(objs: list[Obj], pods: list, root: Path) -> list[str]:
    def selects(selector: dict, labels: dict) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    problems = []
    for obj in objs:
        body = obj.body
        if body.get("kind") == "Deployment":
            selector = body["spec"]["selector"].get("matchLabels") or {}
            labels = (body["spec"]["template"].get("metadata") or {}).get("labels") or {}
            if not selects(selector, labels):
                problems.append(f"{obj.where(root)}: its selector does not select its own pods")
            others = [o for o, lab in pods if o is not obj and o.key[0] == "Deployment" and selects(selector, lab)]
            if others:
                problems.append(f"{obj.where(root)}: its selector also selects the pods of {others[0].key[2]}")
        if body.get("kind") == "Service":
            selector = body["spec"].get("selector") or {}
            if selector and not any(selects(selector, lab) for _, lab in pods):
                problems.append(f"{obj.where(root)}: its selector selects no pods")
    return problems


# ---- compose ---------------------------------------------------------------

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def compose_problems(path: Path, repo: Path) -> list[str]:
    try:
        docs = load_yaml_docs(path)
    except Problem as err:
        return [err.report(repo)]
    doc = docs[0] if docs else {}
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    where = rel(path, repo)
    problems = []
    if not services:
        problems.append(f"{where}: no services")
    for name, svc in services.items():
        problems += [f"{where}: service {name}: {p}" for p in service_problems(svc, services, volumes, repo)]
    return problems


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text: str) -> str:
    """compose's ${VAR} and ${VAR:-default}, with VAR unset."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", text)


def service_problems(svc: dict, services: dict, volumes: set, repo: Path) -> list[str]:
    problems = []
    if "image" not in svc and "build" not in svc:
        problems.append("needs an image or a build")
    build = svc.get("build")
    if build is not None:
        problems += build_problems(build, repo)
    for vol in svc.get("volumes") or []:
        if isinstance(vol, str) and ":" not in vol:
            continue  # an anonymous volume
        source = interpolate(vol).split(":")[0] if isinstance(vol, str) else (vol or {}).get("source")
        if source and not source.startswith((".", "/", "~")) and source not in volumes:
            problems.append(f"volume {source} is not declared under volumes:")
    deps = svc.get("depends_on") or []
    for dep in (deps if isinstance(deps, list) else deps.keys()):
        if dep not in services:
            problems.append(f"depends_on names {dep}, no such service")
        elif (isinstance(deps, dict) and (deps[dep] or {}).get("condition") == "service_healthy"
              and "healthcheck" not in services[dep]):
            problems.append(f"waits for {dep} to be healthy, but {dep} has no healthcheck")
    test = (svc.get("healthcheck") or {}).get("test")
    if isinstance(test, list) and (not test or test[0] not in ("CMD", "CMD-SHELL", "NONE")):
        problems.append("healthcheck test must start with CMD, CMD-SHELL or NONE")
    profiles = svc.get("profiles")
    if profiles is not None and (not isinstance(profiles, list)
                                 or not all(isinstance(p, str) and NAME.match(p) for p in profiles)):
        problems.append("profiles must be a list of names")
    devices = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")
    for dev in devices or []:
        if not isinstance(dev, dict) or not dev.get("capabilities"):
            problems.append("a reserved device needs capabilities (e.g. [gpu])")
        elif not dev.get("driver"):
            problems.append("a reserved device needs a driver (e.g. nvidia)")
        elif "count" in dev and "device_ids" in dev:
            problems.append("a reserved device takes count or device_ids, not both")
    return problems


def build_problems(build, repo: Path) -> list[str]:
    if isinstance(build, str):
        build = {"context": build}
    context = repo / build.get("context", ".")
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        return [f"build: {rel(dockerfile, repo)} does not exist"]
    target = build.get("target")
    stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text())
    if target and target not in stages:
        return [f"build: {rel(dockerfile, repo)} has no stage {target} (it has {', '.join(stages)})"]
    return []


# ---- the whole check -------------------------------------------------------

def check(repo: Path) -> list[str]:
    kube = repo / "deploy" / "kubernetes"
    crds = load_crd_validators(kube / "schemas")
    reference = reference_renderer()
    problems: list[str] = []
    checked: set[str] = set()
    for kfile in sorted(kube.rglob("kustomization.yaml")):
        folder = kfile.parent
        try:
            objs = render(folder)
        except Problem as err:
            problems.append(err.report(repo))
            continue
        if reference:
            problems += compare_with_kustomize(folder, objs, reference, repo)
        for obj in objs:
            text = canonical(obj.body)
            if text not in checked:
                checked.add(text)
                problems += schema_problems(obj, crds, repo)
        if folder.name in COMPLETE:
            problems += reference_problems(objs, rel(folder, repo), repo)
    problems += compose_problems(repo / "docker-compose.yml", repo)
    return list(dict.fromkeys(problems))


# ---- the scalers' queries against the real schema ---------------------------

# Tasks made for the query check: (model, state, job paused).
QUERY_FIXTURE = [
    ("sd15", "queued", False), ("sd15", "queued", False), ("sd15", "running", False),
    ("sd15", "queued", True), ("sd15", "running", True), ("sd15", "succeeded", False),
    ("sd15", "failed", False), ("sd15", "cancelled", False),
    ("sdxl", "running", False), ("sdxl", "succeeded", False),
    ("fresco-shapes", "queued", False), ("tiny-random-dit", "queued", True),
    ("tiny-random-dit", "running", False), ("other-model", "queued", False),
]


def psql(url: str, *args: str) -> str:
    command = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    if command is None:
        raise SystemExit("psql not found: install PostgreSQL's client")
    out = subprocess.run([str(command), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, *args],
                         capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise Problem(Path("psql"), out.stderr.strip())
    return out.stdout.strip()


def fixture_sql() -> str:
    rows = []
    for i, (model, state, paused) in enumerate(QUERY_FIXTURE):
        job = f"00000000-0000-0000-0000-{i:012d}"
        task = f"00000000-0000-0000-0001-{i:012d}"
        lease = "now() + interval '30 seconds'" if state == "running" else "NULL"
        rows.append(
            f"INSERT INTO jobs (id, model, max_attempts, task_count, paused) "
            f"VALUES ('{job}', '{model}', 3, 1, {str(paused).lower()});\n"
            f"INSERT INTO tasks (id, job_id, idx, model, priority, prompt, negative_prompt, seed, "
            f"steps, width, height, guidance, n, sampler, state, max_attempts, lease_expires_at) "
            f"VALUES ('{task}', '{job}', 0, '{model}', 0, 'p', '', 1, 20, 64, 64, 7.5, 1, "
            f"'euler', '{state}', 3, {lease});")
    return "\n".join(rows)


def pool_models(objs: list[Obj], deployment: str) -> set[str]:
    for obj in objs:
        if obj.key[0] == "Deployment" and obj.key[2] == deployment:
            for env in obj.body["spec"]["template"]["spec"]["containers"][0].get("env") or []:
                if env.get("name") == "FRESCO_MODELS":
                    return set(env["value"].split(","))
    return set()


def query_problems(repo: Path, url: str) -> list[str]:
    """Runs each pool's KEDA query against a scratch database migrated with
    migrations/postgres, holding QUERY_FIXTURE's tasks, and checks that it
    counts exactly the queued (of jobs not paused) and running tasks of the
    models its pool's Deployment serves."""
    from urllib.parse import urlsplit, urlunsplit
    name = f"fresco_scaler_check_{os.getpid()}"
    psql(url, "-c", f"CREATE DATABASE {name}")
    scratch = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    problems = []
    try:
        for migration in sorted((repo / "migrations" / "postgres").glob("*.sql")):
            psql(scratch, "-f", str(migration))
        psql(scratch, "-c", fixture_sql())
        kube = repo / "deploy" / "kubernetes"
        for deployment in sorted(COMPLETE):
            objs = render(kube / deployment)
            for obj in objs:
                if obj.key[0] != "ScaledObject":
                    continue
                target = obj.body["spec"]["scaleTargetRef"]["name"]
                models = pool_models(objs, target)
                want = sum(1 for m, state, paused in QUERY_FIXTURE
                           if m in models and (state == "running" or (state == "queued" and not paused)))
                for trigger in obj.body["spec"]["triggers"]:
                    if trigger.get("type") != "postgresql":
                        continue
                    got = psql(scratch, "-c", trigger["metadata"]["query"])
                    if got != str(want):
                        problems.append(f"{obj.where(repo)}: its query counts {got} tasks where "
                                        f"{target} (models {sorted(models)}) has {want} to do")
    except Problem as err:
        problems.append(err.report(repo))
    finally:
        psql(url, "-c", f"DROP DATABASE IF EXISTS {name}")
    return list(dict.fromkeys(problems))


# ---- self-test -------------------------------------------------------------

def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise SystemExit(f"self-test: {path} no longer holds {old!r}; update the self-test")
    path.write_text(text.replace(old, new, 1))


BREAKAGES = [
    # (what, file, old, new, a word the report must hold with the file's name)
    ("a misspelt field", "deploy/kubernetes/coordinator/deployment.yaml",
     "containerPort: 50051", "containerPrt: 50051", "containerPrt"),
    ("a wrong type in a KEDA ScaledObject", "deploy/kubernetes/worker-pool/scaledobject.yaml",
     "minReplicaCount: 0", "minReplicaCount: zero", "minReplicaCount"),
    ("a misspelt KEDA postgresql trigger setting", "deploy/kubernetes/worker-pool/scaledobject.yaml",
     'targetQueryValue: "1"', 'targetQueryValu: "1"', "targetQueryValu"),
    ("a pool scaling a Deployment that does not exist", "deploy/kubernetes/pools/sdxl/kustomization.yaml",
     "path: /spec/scaleTargetRef/name\n        value: fresco-worker-sdxl",
     "path: /spec/scaleTargetRef/name\n        value: fresco-worker-sdx", "fresco-worker-sdx"),
    ("a resource that does not exist", "deploy/kubernetes/farm/kustomization.yaml",
     "../pools/sdxl", "../pools/sdxxl", "sdxxl"),
    ("an undeclared compose volume", "docker-compose.yml",
     "- keys:/keys:ro", "- key-store:/keys:ro", "key-store"),
    ("a compose build of a Dockerfile that does not exist", "docker-compose.yml",
     "dockerfile: deploy/Dockerfile.cuda", "dockerfile: deploy/Dockerfile.gpu", "Dockerfile.gpu"),
    ("waiting on a healthcheck that is gone", "docker-compose.yml",
     "healthcheck:\n      test: [\"CMD\", \"grpc_health_probe\"", "x-healthcheck:\n      test: [\"CMD\", \"grpc_health_probe\"",
     "no healthcheck"),
]


def self_test(repo: Path) -> int:
    if check(repo):
        print("self-test: the files as they are do not pass; run without --self-test", file=sys.stderr)
        return 1
    failures = 0
    for what, file, old, new, word in BREAKAGES:
        with tempfile.TemporaryDirectory() as tmp:
            copy_root = Path(tmp)
            shutil.copytree(repo / "deploy", copy_root / "deploy")
            shutil.copy(repo / "docker-compose.yml", copy_root / "docker-compose.yml")
            edit(copy_root / file, old, new)
            problems = check(copy_root)
            named = [p for p in problems if file in p and word in p]
            if not problems or not named:
                print(f"self-test: {what} ({file}) was not refused"
                      + (f"; problems reported: {problems}" if problems else ""), file=sys.stderr)
                failures += 1
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help="break copies of the files and fail unless each is refused")
    parser.add_argument("--queries", metavar="DATABASE_URL",
                        help="instead: run the pools' KEDA queries against a scratch database "
                             "made on this Postgres, migrated and filled with known tasks")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.repo)
    problems = query_problems(args.repo, args.queries) if args.queries else check(args.repo)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
