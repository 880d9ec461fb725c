"""The Python SDK: ``dockyard.Client`` talks to the control plane over its REST API.

With no URL (and no ``DOCKYARD_URL``), it starts the embedded server for ``DOCKYARD_HOME`` on
demand. Errors come back as the same ``DockyardError`` classes the server raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from dockyard import embedded
from dockyard.data.code import pack
from dockyard.errors import (
    DockyardError,
    InvalidRequest,
    InvalidSpec,
    ServerUnavailable,
    Unauthorized,
    from_problem,
)
from dockyard.settings import Settings
from dockyard.spec import DESCRIPTOR, Dataset, Job, JobSpec, Service, plural_of
from dockyard.spec.common import API_VERSION
from dockyard.spec.loader import FieldError, Loaded, load_paths, raise_errors
from dockyard.tokens import client_token

Items = list[dict[str, Any]]


def _loc(path: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+", path):
        out.append(int(part) if part.isdigit() else part)
    return tuple(out)


class TokenAuth(httpx.Auth):
    """``Authorization: Bearer`` with the token of ``DOCKYARD_TOKEN`` or ``DOCKYARD_HOME/token``
    (read when first needed: an embedded server makes the file when it first starts)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.token = self.token or client_token(self.settings)
        if self.token:
            request.headers["authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401 and self.token != client_token(self.settings):
            self.token = client_token(self.settings)  # rotated: try once with the new one
            request.headers["authorization"] = f"Bearer {self.token}"
            yield request


def _check_working_dir(base: Path, spec: JobSpec, item: Loaded) -> None:
    """``workingDir`` names a directory of the code (or a mount): say so now, not at run time."""
    wd = spec.working_dir
    if wd is None or wd == ".":
        return
    mounts = [v.mount_path().strip("/") for v in spec.volumes]
    mounts += [d.mount_path().strip("/") for d in spec.datasets]
    if spec.checkpoint is not None:
        mounts.append(spec.checkpoint.path.strip("/"))
    if any(wd == m or wd.startswith(m + "/") for m in mounts if m):
        return  # a mount appears inside the working directory at run time
    if spec.code is not None and spec.code.startswith("sha256:"):
        return  # an uploaded snapshot: the server has it
    directory = (base / spec.code).resolve() if spec.code else None
    if directory is not None and (directory / wd).is_dir():
        return
    message = (
        f"no directory '{wd}' in the code directory {directory}"
        if directory is not None
        else f"'{wd}' is a directory inside spec.code, and there is no spec.code"
    )
    line = item.doc.line_of(("spec", "workingDir"))
    raise_errors([FieldError(item.doc.source, line, "spec.workingDir", message)])


class Client:
    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 30.0,
        autostart: bool = True,
    ) -> None:
        self.settings = settings or Settings()
        url = url or self.settings.url
        if url is None:
            if autostart:
                url = embedded.ensure_running(self.settings)
            else:
                current = embedded.info(self.settings)
                if current is None:
                    raise ServerUnavailable(
                        "no Dockyard server is running",
                        hint="start one with `dockyard server start`",
                    )
                url = str(current["url"])
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, auth=TokenAuth(self.settings))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def _raise(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict) and "code" in body:
            raise from_problem(body)
        raise DockyardError(f"server answered {response.status_code}: {response.text[:300]}")

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to the server, whatever it answers (unreachable: ServerUnavailable)."""
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"cannot reach the Dockyard server at {self.url}: {exc}",
                hint="is it running? `dockyard server status`",
            ) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            self._raise(response)
        return response.json()

    # -- resources ----------------------------------------------------------------------
    def apply(self, documents: list[dict[str, Any]], *, dry_run: bool = False) -> Items:
        result: Items = self.request(
            "POST", "/api/v1/apply", json={"documents": documents, "dryRun": dry_run}
        )
        return result

    def apply_paths(self, paths: Iterable[str | Path], *, dry_run: bool = False) -> Items:
        """Load YAML files/directories, upload code directories, and apply everything."""
        loaded = load_paths(paths)
        documents = [self._prepare(item) for item in loaded]
        try:
            return self.apply(documents, dry_run=dry_run)
        except InvalidSpec as exc:
            errors = []
            for err in exc.details.get("errors", []):
                match = re.match(r"document (\d+)$", str(err.get("source", "")))
                if match is None:
                    raise
                doc = loaded[int(match.group(1)) - 1].doc
                errors.append(
                    FieldError(
                        doc.source, doc.line_of(_loc(err["path"])), err["path"], err["message"]
                    )
                )
            raise_errors(errors)
            raise

    def _prepare(self, item: Loaded) -> dict[str, Any]:
        resource = item.resource
        base = Path(item.doc.source).resolve().parent
        data = resource.model_dump(mode="json", by_alias=True, exclude={"status"})
        spec = data["spec"]
        if isinstance(resource, Job):
            _check_working_dir(base, resource.spec, item)
        if isinstance(resource, Job) and resource.spec.code:
            spec["code"] = self._upload(base, resource.spec.code, item, ("spec", "code"))
        if isinstance(resource, Dataset):
            prepare = resource.spec.prepare
            if prepare is not None and prepare.code:
                spec["prepare"]["code"] = self._upload(
                    base, prepare.code, item, ("spec", "prepare", "code")
                )
            source = resource.spec.source or ""
            if source.startswith("file://") and not source.startswith("file:///"):
                spec["source"] = "file://" + str((base / source[len("file://") :]).resolve())
        return data

    def _upload(self, base: Path, ref: str, item: Loaded, loc: tuple[str, ...]) -> str:
        if ref.startswith("sha256:"):
            return ref
        directory = (base / ref).resolve()
        if not directory.is_dir():
            raise_errors(
                [
                    FieldError(
                        item.doc.source,
                        item.doc.line_of(loc),
                        ".".join(loc),
                        f"code directory {directory} does not exist",
                    )
                ]
            )
        try:
            return self.upload_code(pack(directory))
        except (InvalidSpec, InvalidRequest) as exc:  # the directory, or the server, refused
            if "errors" in exc.details:
                raise
            error = FieldError(item.doc.source, item.doc.line_of(loc), ".".join(loc), exc.message)
            raise InvalidSpec(
                str(error),
                hint=exc.hint or "fix the code directory and apply again; nothing was changed",
                details={"errors": [error.as_dict()]},
            ) from exc

    def upload_code(self, archive: bytes) -> str:
        result = self.request(
            "POST", "/api/v1/code", content=archive, headers={"content-type": "application/gzip"}
        )
        return str(result["ref"])

    def list(self, kind: str, project: str | None = None, selector: str | None = None) -> Items:
        params = {k: v for k, v in (("project", project), ("selector", selector)) if v}
        items: Items = self.request("GET", f"/api/v1/{plural_of(kind)}", params=params)["items"]
        return items

    def get(self, kind: str, name: str, project: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/{plural_of(kind)}/{name}", params={"project": project}
        )
        return result

    def delete(
        self,
        kind: str,
        name: str,
        project: str = "default",
        *,
        purge: bool = False,
        force: bool = False,
        keep_data: bool = False,
    ) -> dict[str, Any]:
        params = {"project": project, "purge": purge, "force": force, "keepData": keep_data}
        result: dict[str, Any] = self.request(
            "DELETE", f"/api/v1/{plural_of(kind)}/{name}", params=params
        )
        return result

    def delete_many(
        self,
        targets: Iterable[tuple[str, str, str]],
        *,
        purge: bool = False,
        force: bool = False,
        keep_data: bool = False,
    ) -> Items:
        """Delete (kind, name, project)s together; ``deleted: false`` for those not there."""
        body = {
            "items": [{"kind": k, "name": n, "project": p} for k, n, p in targets],
            "purge": purge,
            "force": force,
            "keepData": keep_data,
        }
        result: Items = self.request("POST", "/api/v1/delete", json=body)
        return result

    def events(
        self, kind: str | None = None, name: str | None = None, project: str = "default"
    ) -> Items:
        if kind is None or name is None:
            items = self.request("GET", "/api/v1/events", params={"project": project})
        else:
            items = self.request(
                "GET", f"/api/v1/{plural_of(kind)}/{name}/events", params={"project": project}
            )
        result: Items = items["items"]
        return result

    def workloads(self, kind: str, name: str, project: str = "default") -> Items:
        result: Items = self.request(
            "GET", f"/api/v1/{plural_of(kind)}/{name}/workloads", params={"project": project}
        )["items"]
        return result

    def logs(
        self,
        kind: str,
        name: str,
        project: str = "default",
        *,
        attempt: int | None = None,
        follow: bool = False,
    ) -> Iterator[bytes]:
        params: dict[str, Any] = {"project": project, "follow": follow}
        if attempt is not None:
            params["attempt"] = attempt
        try:
            with self._http.stream(
                "GET", f"/api/v1/{plural_of(kind)}/{name}/logs", params=params, timeout=None
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"lost the connection to {self.url}: {exc}") from exc

    def cancel(self, name: str, project: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/jobs/{name}/cancel", params={"project": project}
        )
        return result

    def wait(
        self,
        kind: str,
        name: str,
        project: str = "default",
        *,
        until: set[str] | None = None,
        timeout: float = 600.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the resource reaches one of ``until`` (default: its kind's final phases)."""
        until = until or set(DESCRIPTOR[kind].final)
        deadline = time.monotonic() + timeout
        while True:
            resource = self.get(kind, name, project)
            status = resource.get("status", {})
            if on_status is not None:
                on_status(resource)
            current = status.get("observedGeneration") == resource["metadata"]["generation"]
            if current and status.get("phase") in until:
                return resource
            if time.monotonic() > deadline:
                raise DockyardError(
                    f"{kind.lower()} '{name}' is still {status.get('phase')} "
                    f"after {timeout:.0f}s: {status.get('message', '')}"
                )
            time.sleep(0.2)

    # -- volumes: snapshots, restores, backups ------------------------------------------
    def snapshot_volume(
        self,
        name: str,
        project: str = "default",
        *,
        wait: bool = True,
        timeout: float = 3600.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Ask for a snapshot; with ``wait``, the volume once it was taken (its status
        names it: ``lastSnapshot``)."""
        path = f"/api/v1/volumes/{name}/snapshots"
        asked = int(self.request("POST", path, params={"project": project})["request"])
        if not wait:
            return self.get("Volume", name, project)
        return self._until(
            name,
            project,
            lambda s: int(s.get("snapshotRequest", 0)) >= asked,
            "snapshot",
            timeout,
            on_status,
        )

    def volume_snapshots(self, name: str, project: str = "default") -> Items:
        path = f"/api/v1/volumes/{name}/snapshots"
        result: Items = self.request("GET", path, params={"project": project})["items"]
        return result

    def restore_volume(
        self,
        name: str,
        snapshot: str,
        project: str = "default",
        *,
        to: str | None = None,
        timeout: float = 3600.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Restore ``snapshot`` of volume ``name`` into a new volume ``to`` (same spec,
        started from the snapshot), or in place once nothing mounts it; waits until done."""
        if to is not None:
            source = self.get("Volume", name, project)
            spec = {k: v for k, v in source["spec"].items() if k in ("size", "tier", "replicas")}
            spec["source"] = {"volume": name, "snapshot": snapshot}
            doc = {
                "apiVersion": API_VERSION,
                "kind": "Volume",
                "metadata": {"name": to, "project": project},
                "spec": spec,
            }
            self.apply([doc])
            return self.wait("Volume", to, project, timeout=timeout, on_status=on_status)
        path = f"/api/v1/volumes/{name}/restore"
        body = {"snapshot": snapshot}
        asked = int(self.request("POST", path, params={"project": project}, json=body)["request"])
        return self._until(
            name,
            project,
            lambda s: int(s.get("restoreRequest", 0)) >= asked,
            "restore",
            timeout,
            on_status,
        )

    def _until(
        self,
        name: str,
        project: str,
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float,
        on_status: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            volume = self.get("Volume", name, project)
            if on_status is not None:
                on_status(volume)
            if done(volume.get("status", {})):
                return volume
            if time.monotonic() > deadline:
                raise DockyardError(
                    f"the {what} of volume '{name}' did not finish in {timeout:.0f}s: "
                    f"{volume.get('status', {}).get('message', '')}"
                )
            time.sleep(0.2)

    def backup(self, target: str, passphrase: str | None = None) -> dict[str, Any]:
        """Snapshot the control plane's store and every volume and push them to ``target``."""
        body = {"target": target, "passphrase": passphrase}
        result: dict[str, Any] = self.request("POST", "/api/v1/backup", json=body, timeout=None)
        return result

    def dataset_diff(self, a: str, b: str, project: str = "default") -> dict[str, Any]:
        """What changed between two dataset versions (``NAME`` or ``NAME@vN`` each)."""
        params = {"a": a, "b": b, "project": project}
        result: dict[str, Any] = self.request("GET", "/api/v1/datasets:diff", params=params)
        return result

    # -- registry -----------------------------------------------------------------------
    def model_versions(self, name: str, project: str = "default") -> Items:
        result: Items = self.request(
            "GET", f"/api/v1/models/{name}/versions", params={"project": project}
        )["items"]
        return result

    def model_version(
        self, name: str, ref: str = "latest", project: str = "default"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/models/{name}/versions/{ref}", params={"project": project}
        )
        return result

    def download_model(
        self, name: str, ref: str, dest: Path, project: str = "default"
    ) -> tuple[dict[str, Any], Path]:
        """Fetch a model version's files into ``dest/<version>`` (verified); reuse a copy."""
        view = self.model_version(name, ref, project)
        target = dest / str(view["version"])
        if (target / ".dockyard-complete").exists():
            return view, target
        tmp = dest / f".{view['version']}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        for rel, info in view["files"].items():
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            url = f"/api/v1/models/{name}/versions/{view['version']}/files/{rel}"
            with self._http.stream("GET", url, params={"project": project}) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                with open(out, "wb") as fh:
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        fh.write(chunk)
            if digest.hexdigest() != info["sha256"]:
                raise DockyardError(
                    f"{rel} of {name}@{view['version']} arrived corrupted", hint="try again"
                )
        (tmp / ".dockyard-complete").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return view, target

    def set_alias(
        self, name: str, alias: str, version: int, project: str = "default"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT",
            f"/api/v1/models/{name}/aliases/{alias}",
            params={"project": project},
            json={"version": version},
        )
        return result

    def delete_alias(self, name: str, alias: str, project: str = "default") -> None:
        self.request(
            "DELETE", f"/api/v1/models/{name}/aliases/{alias}", params={"project": project}
        )

    # -- secrets ------------------------------------------------------------------------
    def set_secret(self, name: str, data: dict[str, str], project: str = "default") -> Any:
        """Create or replace a secret (encrypted by the server; never answered back)."""
        return self.request(
            "PUT", f"/api/v1/secrets/{name}", params={"project": project}, json={"data": data}
        )

    def secrets(self, project: str = "default") -> Items:
        result: Items = self.request("GET", "/api/v1/secrets", params={"project": project})["items"]
        return result

    def delete_secret(self, name: str, project: str = "default", *, force: bool = False) -> Any:
        params = {"project": project, "force": force}
        return self.request("DELETE", f"/api/v1/secrets/{name}", params=params)

    def reencrypt_secrets(self) -> int:
        return int(self.request("POST", "/api/v1/secrets:reencrypt")["reencrypted"])

    # -- serving ------------------------------------------------------------------------
    def predict(
        self,
        service: str,
        body: dict[str, Any],
        project: str = "default",
        timeout: float = 30.0,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Send an Open Inference Protocol request to a ready service, through the control
        plane (``/api/v1/services/NAME/proxy``: a Service on a cluster answers only there);
        ``token`` is the service's own (``spec.auth``), for the model server."""
        svc = self.get(Service.KIND, service, project)
        status = svc.get("status", {})
        if not status.get("url"):
            raise DockyardError(
                f"service '{service}' has no ready replica "
                f"({status.get('phase')}: {status.get('message', '')})",
                hint=f"watch it with `dockyard describe service {service}`",
            )
        model = str(status.get("modelVersion") or svc["spec"]["model"]).split("@")[0]
        response = self.send(
            "POST",
            f"/api/v1/services/{service}/proxy/v2/models/{model}/infer",
            params={"project": project},
            json=body,
            timeout=timeout,
            headers={"X-Dockyard-Serving-Token": token} if token else None,
        )
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            self._raise(response)  # the control plane's own answer (no replica, unreachable)
        payload: dict[str, Any] = response.json()
        if response.status_code == 401:
            raise Unauthorized(
                f"service '{service}' needs its token (spec.auth): "
                + ("the one given was refused" if token else "none was given"),
                hint="pass the value of the secret spec.auth.token names: --token-file FILE "
                "or DOCKYARD_SERVING_TOKEN",
            )
        if response.status_code >= 400:
            raise DockyardError(
                f"prediction failed ({response.status_code}): {payload.get('error', payload)}"
            )
        return payload

    # -- images -------------------------------------------------------------------------
    def images(self, runtime: str | None = None) -> dict[str, Any]:
        params = {"runtime": runtime} if runtime else {}
        result: dict[str, Any] = self.request("GET", "/api/v1/images", params=params)
        return result

    def containerfile(self, environment: str, project: str = "default") -> str:
        response = self._http.get(
            f"/api/v1/environments/{environment}/containerfile", params={"project": project}
        )
        if response.status_code >= 400:
            self._raise(response)
        return response.text

    def build_image(
        self,
        environment: str,
        project: str = "default",
        runtime: str | None = None,
        progress: Callable[[str], None] | None = None,
        *,
        serving: bool = False,
        push: str | None = None,
    ) -> dict[str, Any]:
        """Build (or find in the cache) the environment's image (``serving``: and its model
        server image; ``push``: then push them there); progress line by line."""
        params: dict[str, Any] = {"project": project, "serving": serving}
        if runtime:
            params["runtime"] = runtime
        if push:
            params["push"] = push
        with self._http.stream(
            "POST", f"/api/v1/environments/{environment}/image", params=params, timeout=None
        ) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            for line in response.iter_lines():
                if line.startswith("RESULT "):
                    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
                    if "error" in result:
                        raise DockyardError(result["error"], hint=result.get("hint"))
                    return result
                if progress is not None:
                    progress(line)
        raise ServerUnavailable("the build stream ended without a result")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/healthz")
        return result

    def node(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/v1/node")
        return result
