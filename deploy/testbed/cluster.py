#!/usr/bin/env python3
"""A real Kubernetes test cluster on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (fake nodes) and the volume provisioner (provisioner.py), optionally
containerd + kubelet (one real node).

    python3 deploy/testbed/cluster.py up [--nodes N] [--real-node]
    python3 deploy/testbed/cluster.py down [--keep-data]
    python3 deploy/testbed/cluster.py restart-apiserver
    python3 deploy/testbed/cluster.py status

The binaries come from deploy/testbed/build.sh (built from their Go modules, cached). Everything
the cluster writes lives under .cluster/ in the checkout root: pki/ (certificates, kept by
`down`), etcd/ (data, removed by `down` unless --keep-data), logs/NAME.log, pids/NAME.pid and
kubeconfig (the admin's). Python standard library only, plus the openssl command line tool.
See docs/kubernetes-testbed.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLUSTER = ROOT / ".cluster"
PKI = CLUSTER / "pki"
LOGS = CLUSTER / "logs"
PIDS = CLUSTER / "pids"
ETCD_DATA = CLUSTER / "etcd"
KUBECONFIG = CLUSTER / "kubeconfig"
PORTS_FILE = CLUSTER / "ports.json"


DEFAULT_PORTS = {
    "etcd": 12379,
    "etcd-peer": 12380,
    "kube-apiserver": 16443,
    "kube-controller-manager": 16257,
    "kube-scheduler": 16259,
    "kubelet": 16250,
    "kubelet-healthz": 16248,
}


def port_env(name: str) -> str:
    """The variable that moves a port: DOCKYARD_TESTBED_KUBE_APISERVER_PORT and the like."""
    return f"DOCKYARD_TESTBED_{name.upper().replace('-', '_')}_PORT"


def env_port(name: str) -> int:
    value = os.environ.get(port_env(name), "")
    return int(value) if value.isdigit() else DEFAULT_PORTS[name]


def bad_port_settings() -> list[str]:
    bad = []
    for name in DEFAULT_PORTS:
        value = os.environ.get(port_env(name), "")
        if value and not (value.isdigit() and 0 < int(value) < 65536):
            bad.append(f"{port_env(name)}={value!r} is not a TCP port")
    return bad


PORTS = {name: env_port(name) for name in DEFAULT_PORTS}
SERVICE_CIDR = "10.96.0.0/16"
FIRST_SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.1/16"  # the pod IPs kwok hands out, from the first address
REAL_POD_CIDR = "10.123.0.0/16"  # the real node's bridge (podman has 10.88 and 10.89)
REAL_BRIDGE = "testbed0"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
REAL_NODE = "real-node-0"
PAUSE_IMAGE = "localhost/dockyard/pause:testbed"
# start order; `down` stops in the reverse order
ORDER = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "provisioner",
    "containerd",
    "kubelet",
]
# the Go binaries of build.sh the control plane needs (the kubelet only with --real-node)
BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
# deploy/testbed/provisioner.py: hostPath volumes for PersistentVolumeClaims (stdlib Python)
PROVISIONER = HERE / "provisioner.py"
CONTROL_PLANE = BINARIES + (["provisioner"] if PROVISIONER.is_file() else [])


class ClusterError(Exception):
    """One line saying what failed; `log` names the log whose tail explains it."""

    def __init__(self, message: str, log: str | None = None) -> None:
        super().__init__(message)
        self.log = log


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a short command, its output captured as text; the caller checks the exit code."""
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def say(message: str) -> None:
    print(f"cluster: {message}", flush=True)


# --------------------------------------------------------------------------- processes


def pid_file(name: str) -> Path:
    return PIDS / f"{name}.pid"


def cmd_file(name: str) -> Path:
    return PIDS / f"{name}.json"


def log_file(name: str) -> Path:
    return LOGS / f"{name}.log"


def read_pid(name: str) -> int | None:
    try:
        return int(pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None, argv0: str | None = None) -> bool:
    """Whether pid runs (a zombie does not count) and, given argv0, is still that program."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return False
    return argv0 is None or cmdline[0].decode(errors="replace") == argv0


def recorded(name: str) -> dict:
    try:
        return json.loads(cmd_file(name).read_text())
    except (OSError, ValueError):
        return {}


def running(name: str) -> int | None:
    """The pid of NAME if the process this script started for it still runs."""
    pid = read_pid(name)
    argv = recorded(name).get("argv") or [None]
    return pid if alive(pid, argv[0]) else None


def known_components() -> list[str]:
    names = {p.stem for p in PIDS.glob("*.pid")} if PIDS.is_dir() else set()
    return [n for n in ORDER if n in names]


def last_run(name: str) -> list[str]:
    """The log lines of NAME's latest start."""
    try:
        text = log_file(name).read_text(errors="replace").splitlines()
    except OSError:
        return []
    starts = [i for i, line in enumerate(text) if line.startswith("==== cluster.py: starting")]
    return text[starts[-1] + 1 :] if starts else text


def log_tail(name: str | None, lines: int = 12) -> str:
    if not name:
        return ""
    if not log_file(name).exists():
        return f"  (no log at {log_file(name)})"
    return "\n".join("  | " + line[:300] for line in last_run(name)[-lines:])


def last_error(name: str) -> str:
    """The last error line of NAME's latest start (klog E/F lines, JSON and logfmt errors)."""
    for line in reversed(last_run(name)):
        if line[:1] in ("E", "F") and line[1:5].isdigit():
            return line.split("] ", 1)[-1][:300]
        if any(mark in line for mark in ('"level":"ERROR"', "level=error", "level=fatal")):
            return line[:300]
        if line.startswith(("Error:", "error:", "panic:")):
            return line[:300]
    return ""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def host_ip() -> str:
    """The machine's own IPv4 address (of its default route): the real node's InternalIP.

    The kubelet refuses a loopback node IP, and the apiserver reaches a kubelet (logs, exec)
    at its node's InternalIP; no packet is sent here.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.254.254.254", 9))
            address = sock.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        raise ClusterError("--real-node: this machine has no IPv4 address besides loopback")
    return address


class Launcher:
    """Starts the components, remembers them, and can take them all down again on failure."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        for path in (LOGS, PIDS):
            path.mkdir(parents=True, exist_ok=True)
        if not Path(argv[0]).is_file():
            raise ClusterError(f"{name}: binary {argv[0]} is missing")
        full_env = dict(os.environ)
        full_env.pop("KUBECONFIG", None)
        full_env.update(env or {})
        with log_file(name).open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n==== cluster.py: starting {name} at {stamp}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=CLUSTER,
                    env=full_env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ClusterError(f"{name}: cannot start {argv[0]}: {exc}") from exc
        self.children[name] = proc
        pid_file(name).write_text(f"{proc.pid}\n")
        cmd_file(name).write_text(json.dumps({"argv": argv, "env": env or {}}, indent=1) + "\n")

    def check(self) -> None:
        """Raise if one of the processes started here has exited."""
        for name, proc in self.children.items():
            code = proc.poll()
            if code is not None:
                reason = last_error(name)
                raise ClusterError(
                    f"{name} exited at start (exit code {code})"
                    + (f": {reason}" if reason else ""),
                    log=name,
                )

    def wait(self, what: str, probe, timeout: float, log: str | None) -> float:
        """Poll probe() until it is true; returns the seconds it took."""
        start = time.monotonic()
        while True:
            self.check()
            try:
                if probe():
                    return time.monotonic() - start
            except (OSError, ValueError, ssl.SSLError, urllib.error.URLError):
                pass
            if time.monotonic() - start > timeout:
                raise ClusterError(f"{what}: not ready after {timeout:.0f} s", log=log)
            time.sleep(0.25)


def terminate(targets: dict[str, int], grace: float) -> list[str]:
    """SIGTERM the processes, SIGKILL what is left after grace; return what survived."""
    for pid in targets.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in targets.values()):
        time.sleep(0.1)
    for name, pid in targets.items():
        if alive(pid):
            say(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f} s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in targets.values()):
        time.sleep(0.1)
    return [f"{name} (pid {pid})" for name, pid in targets.items() if alive(pid)]


def stop(names: list[str], grace: float = 10.0, strays_too: bool = False) -> list[str]:
    """Stop the components NAMES; return what survived SIGTERM, SIGKILL and a last look.

    The kubelet goes first (so that it restarts no container), then the real node's pods
    (containerd's shims and everything below them outlive containerd), then the rest at once.
    strays_too: also the unrecorded processes of this .cluster/ (an interrupted earlier run).
    """
    survivors = []
    if "kubelet" in names and (pid := running("kubelet")):
        survivors += terminate({"kubelet": pid}, grace)
    pods: list[int] = []
    if "containerd" in names or strays_too:
        pods = kill_pods()
    targets = {name: pid for name in names if name != "kubelet" and (pid := running(name))}
    if strays_too:
        targets.update({f"{exe} (unrecorded)": pid for pid, exe in strays()})
    survivors += terminate(targets, grace)
    if "containerd" in names or strays_too:
        pods += kill_pods()  # a shim that containerd started while it stopped
    survivors += [f"pod process (pid {pid})" for pid in pods if alive(pid)]
    if strays_too:
        known = set(targets.values())
        survivors += [f"{exe} (pid {pid})" for pid, exe in strays() if pid not in known]
    for name in names:
        if not running(name):
            pid_file(name).unlink(missing_ok=True)
    return survivors


def strays() -> list[tuple[int, str]]:
    """Processes of our binaries that were started for this .cluster/ but are not recorded."""
    found = []
    marker = str(CLUSTER).encode()
    recorded_pids = {read_pid(n) for n in known_components()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in recorded_pids:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        exe = Path(cmdline.split(b"\0")[0].decode(errors="replace")).name
        ours = (
            exe in BINARIES or exe in ("kubelet", "containerd") or exe.startswith("containerd-shim")
        )
        if ours and marker in cmdline and alive(int(entry.name)):
            found.append((int(entry.name), exe))
    return found


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_pods() -> list[int]:
    """SIGKILL the real node's containers and then their shims; return the pids it signalled."""
    shims = [pid for pid, exe in strays() if exe.startswith("containerd-shim")]
    trees = [pid for shim in shims for pid in descendants(shim) if pid != shim]
    for pid in trees + shims:  # the containers first: orphans would go to init
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in trees + shims):
        time.sleep(0.1)
    return trees + shims


def remove_pod_cgroups() -> None:
    """rmdir the kubelet's empty cgroups (cgroup v1: one tree per controller), deepest first.

    Not while any kubelet runs on the machine: /kubepods is not ours alone.
    """
    for entry in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if entry.read_text().strip() == "kubelet" and alive(int(entry.parent.name)):
                return
    for tree in Path("/sys/fs/cgroup").glob("*/kubepods"):
        for directory in sorted(tree.glob("**/"), key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()


def release_node() -> None:
    """What the stopped real node leaves on the machine: mounts, its cgroups, the CNI bridge."""
    unmount_under(CLUSTER)
    remove_pod_cgroups()
    if Path(f"/sys/class/net/{REAL_BRIDGE}").exists():
        run(["ip", "link", "delete", REAL_BRIDGE])


def unmount_under(path: Path) -> None:
    """Unmount what the kubelet and containerd mounted below path (deepest first)."""
    prefix = str(path) + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        run(["umount", "-l", point])


# --------------------------------------------------------------------------- certificates


def openssl(*args: str) -> None:
    if not shutil.which("openssl"):
        raise ClusterError("the openssl command is missing (apt-get install openssl)")
    result = run(["openssl", *args])
    if result.returncode:
        raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}")


def new_cert(
    name: str, subject: str, usage: str, sans: list[str] | None = None, ca: bool = False
) -> None:
    """PKI/NAME.key and NAME.crt, signed by the testbed CA (or self-signed when ca)."""
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    if key.exists() and crt.exists():
        return
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    key.chmod(0o600)
    conf = PKI / "req.cnf"
    conf.write_text("[req]\ndistinguished_name = dn\n[dn]\n")
    csr = PKI / f"{name}.csr"
    openssl(
        "req", "-new", "-config", str(conf), "-key", str(key), "-subj", subject, "-out", str(csr)
    )
    ext = PKI / f"{name}.ext"
    if ca:
        lines = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
    else:
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
    lines.append("subjectKeyIdentifier=hash")
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    serial = "0x" + secrets.token_hex(16)
    signer = (
        ["-signkey", str(key)]
        if ca
        else ["-CA", str(PKI / "ca.crt"), "-CAkey", str(PKI / "ca.key")]
    )
    openssl(
        "x509", "-req", "-in", str(csr), *signer, "-set_serial", serial, "-days", "3650",
        "-sha256", "-extfile", str(ext), "-out", str(crt),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def make_pki() -> None:
    PKI.mkdir(parents=True, exist_ok=True)
    new_cert("ca", "/CN=dockyard-testbed-ca", "", ca=True)
    host = socket.gethostname()
    new_cert(
        "apiserver",
        "/CN=kube-apiserver",
        "serverAuth",
        [
            "IP:127.0.0.1",
            f"IP:{FIRST_SERVICE_IP}",
            "DNS:localhost",
            f"DNS:{host}",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ],
    )
    new_cert("admin", "/O=system:masters/CN=dockyard-admin", "clientAuth")
    new_cert(
        "apiserver-kubelet-client",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "clientAuth",
    )
    new_cert("controller-manager", "/CN=system:kube-controller-manager", "clientAuth")
    new_cert("scheduler", "/CN=system:kube-scheduler", "clientAuth")
    new_cert("kwok", "/O=system:masters/CN=kwok", "clientAuth")
    new_cert(f"kubelet-{REAL_NODE}", f"/O=system:nodes/CN=system:node:{REAL_NODE}", "clientAuth")
    sa_key, sa_pub = PKI / "sa.key", PKI / "sa.pub"
    if not (sa_key.exists() and sa_pub.exists()):
        openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(sa_key)
        )
        sa_key.chmod(0o600)
        openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, cert: str, user: str) -> Path:
    """A kubeconfig for the client certificate PKI/CERT.crt, certificates inline."""
    server = f"https://127.0.0.1:{PORTS['kube-apiserver']}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dockyard-testbed",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(PKI / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(PKI / f"{cert}.crt"),
                    "client-key-data": b64(PKI / f"{cert}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "dockyard-testbed", "context": {"cluster": "dockyard-testbed", "user": user}}
        ],
        "current-context": "dockyard-testbed",
    }
    # JSON is YAML: every kubeconfig reader takes it
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- API access


def api_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return context


def api(method: str, path: str, body: dict | None = None, timeout: float = 5) -> tuple[int, dict]:
    url = f"https://127.0.0.1:{PORTS['kube-apiserver']}{path}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, context=api_context(), timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, {"text": raw.decode(errors="replace")}


# the CRDs of CSI snapshots (snapshot.storage.k8s.io/v1), from the external-snapshotter module
SNAPSHOTTER = "github.com/kubernetes-csi/external-snapshotter/client/v8"
SNAPSHOTTER_VERSION = "v8.2.0"


def snapshot_crds() -> list[Path]:
    """The VolumeSnapshot CRD files of the external-snapshotter module (the Go module cache,
    downloaded from the module proxy once)."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{SNAPSHOTTER}@{SNAPSHOTTER_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=CLUSTER,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"cluster: go mod download {SNAPSHOTTER}: {done.stderr.strip()[-400:]}")
    crds = Path(json.loads(done.stdout)["Dir"]) / "config" / "crd"
    return sorted(crds.glob("snapshot.storage.k8s.io_*.yaml"))


def install_snapshot_crds() -> None:
    import yaml  # python3-yaml (Debian): the CRDs are YAML

    for path in snapshot_crds():
        body = yaml.safe_load(path.read_text())
        status, answer = api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body)
        if status not in (201, 409):
            raise SystemExit(f"cluster: CRD {path.name}: {status} {answer}")


def readyz() -> bool:
    status, _ = api("GET", "/readyz", timeout=3)
    return status == 200


def healthz_insecure(port: int, path: str = "/healthz", scheme: str = "https") -> bool:
    """The health endpoint of a component serving with its own self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"{scheme}://127.0.0.1:{port}{path}"
    kwargs = {"context": context} if scheme == "https" else {}
    with urllib.request.urlopen(url, timeout=3, **kwargs) as response:
        return response.status == 200


def node_ready(node: dict) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def nodes_ready(names: list[str]) -> bool:
    status, body = api("GET", "/api/v1/nodes")
    if status != 200:
        return False
    ready = {n["metadata"]["name"] for n in body.get("items", []) if node_ready(n)}
    return set(names) <= ready


def kwok_node(index: int) -> dict:
    name = f"kwok-node-{index}"
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/role": "agent",
    }
    if index == 0:
        capacity["nvidia.com/gpu"] = "1"
        labels["nvidia.com/gpu.product"] = "NVIDIA-T4"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1],
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": labels,
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def create_nodes(count: int) -> list[str]:
    names = []
    for index in range(count):
        node = kwok_node(index)
        status, body = api("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise ClusterError(f"creating node {node['metadata']['name']}: {status} {body}")
        names.append(node["metadata"]["name"])
    return names


# --------------------------------------------------------------------------- components


def binaries() -> Path:
    say("building or finding the binaries (deploy/testbed/build.sh) ...")
    result = run([str(HERE / "build.sh")])
    if result.returncode:
        tail = "\n".join("  | " + line for line in result.stderr.splitlines()[-15:])
        raise ClusterError(f"deploy/testbed/build.sh failed (exit {result.returncode})\n{tail}")
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    for name in BINARIES:
        if not (bin_dir / name).is_file():
            raise ClusterError(f"binary {name} is missing from {bin_dir}")
    return bin_dir


def etcd_argv(bin_dir: Path) -> list[str]:
    client = f"http://127.0.0.1:{PORTS['etcd']}"
    peer = f"http://127.0.0.1:{PORTS['etcd-peer']}"
    return [
        str(bin_dir / "etcd"),
        "--name=testbed",
        f"--data-dir={ETCD_DATA}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testbed={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
        "--log-level=warn",
    ]


def apiserver_argv(bin_dir: Path) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={PORTS['kube-apiserver']}",
        f"--etcd-servers=http://127.0.0.1:{PORTS['etcd']}",
        f"--cert-dir={PKI}",
        f"--tls-cert-file={PKI / 'apiserver.crt'}",
        f"--tls-private-key-file={PKI / 'apiserver.key'}",
        f"--client-ca-file={PKI / 'ca.crt'}",
        f"--kubelet-client-certificate={PKI / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={PKI / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={PKI / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--authorization-mode=RBAC,Node",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI / 'sa.pub'}",
        f"--service-account-signing-key-file={PKI / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # 127.0.0.1 may not be an Endpoints address: nothing keeps the kubernetes
        # service's endpoints (no kube-proxy here either)
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def controller_manager_argv(bin_dir: Path) -> list[str]:
    kubeconfig = write_kubeconfig(
        CLUSTER / "controller-manager.kubeconfig",
        "controller-manager",
        "system:kube-controller-manager",
    )
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # the client CA from here, not from kube-system/extension-apiserver-authentication,
        # which has no request-header (front-proxy) CA in this cluster: its lookup logs errors
        "--authentication-skip-lookup=true",
        f"--client-ca-file={PKI / 'ca.crt'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={PORTS['kube-controller-manager']}",
        f"--cert-dir={CLUSTER / 'controller-manager'}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={PKI / 'sa.key'}",
        f"--root-ca-file={PKI / 'ca.crt'}",
        f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
        f"--cluster-signing-key-file={PKI / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
    ]


# Dockyard's placement extender (src/dockyard/placement, docs/placement.md): the scheduler calls
# http://127.0.0.1:PORT/placement/{filter,prioritize} for every pod. Ignorable: while nothing
# listens there (connection refused at once), pods are scheduled as if it were not configured.
EXTENDER_PORT_ENV = "DOCKYARD_TESTBED_EXTENDER_PORT"
EXTENDER_PORT = 26290


def extender_port() -> int:
    value = os.environ.get(EXTENDER_PORT_ENV, "")
    if not value:
        return EXTENDER_PORT
    if not (value.isdigit() and 0 < int(value) < 65536):
        raise ClusterError(f"{EXTENDER_PORT_ENV}={value!r} is not a TCP port")
    return int(value)


def scheduler_argv(bin_dir: Path) -> list[str]:
    kubeconfig = write_kubeconfig(
        CLUSTER / "scheduler.kubeconfig", "scheduler", "system:kube-scheduler"
    )
    config = CLUSTER / "scheduler.yaml"
    config.write_text(
        "# written by deploy/testbed/cluster.py: rewritten on every `up`\n"
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "clientConnection:\n"
        f"  kubeconfig: {kubeconfig}\n"
        "leaderElection:\n"
        "  leaderElect: false\n"
        "profiles:\n"
        "- schedulerName: default-scheduler\n"
        "extenders:\n"
        f"- urlPrefix: http://127.0.0.1:{extender_port()}/placement\n"
        "  filterVerb: filter\n"
        "  prioritizeVerb: prioritize\n"
        "  weight: 5\n"
        "  nodeCacheCapable: true\n"
        "  ignorable: true\n"
        "  httpTimeout: 2s\n"
    )
    return [
        str(bin_dir / "kube-scheduler"),
        f"--config={config}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # the client CA from here, not from kube-system/extension-apiserver-authentication,
        # which has no request-header (front-proxy) CA in this cluster: its lookup logs errors
        "--authentication-skip-lookup=true",
        f"--client-ca-file={PKI / 'ca.crt'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={PORTS['kube-scheduler']}",
        f"--cert-dir={CLUSTER / 'scheduler'}",
    ]


def kwok_argv(bin_dir: Path) -> tuple[list[str], dict[str, str]]:
    kubeconfig = write_kubeconfig(CLUSTER / "kwok.kubeconfig", "kwok", "kwok")
    home = CLUSTER / "kwok"  # kwok reads ~/.kwok/kwok.yaml when it exists: not the user's
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        str(bin_dir / "kwok"),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.0.1",
        "--node-lease-duration-seconds=40",
    ]
    stages = HERE / "kwok-stages.yaml"
    if stages.is_file():
        argv.append(f"--config={stages}")
    return argv, {"HOME": str(home)}


# --------------------------------------------------------------------------- the real node


def containerd_config(cni_bin: Path) -> Path:
    state = CLUSTER / "containerd"
    config = state / "config.toml"
    state.mkdir(parents=True, exist_ok=True)
    (state / "cni").mkdir(exist_ok=True)
    (state / "cni" / "10-testbed.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "testbed",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": REAL_BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,  # no iptables rules on a shared machine
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": REAL_POD_CIDR}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": str(state / "ipam"),
                        },
                    },
                    {"type": "loopback"},
                ],
            },
            indent=1,
        )
        + "\n"
    )
    config.write_text(
        f"""# written by deploy/testbed/cluster.py: rewritten on every `up --real-node`
version = 2
root = "{state / "root"}"
state = "{state / "state"}"

[grpc]
  address = "{state / "containerd.sock"}"

[ttrpc]
  address = "{state / "containerd.sock.ttrpc"}"

[debug]
  address = "{state / "debug.sock"}"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{state / "cni"}"
  # a local registry (DOCKYARD_KUBE_REGISTRY=localhost:5000, e.g. Debian's docker-registry)
  # speaks plain HTTP
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5000"]
    endpoint = ["http://localhost:5000"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:5000"]
    endpoint = ["http://127.0.0.1:5000"]
"""
    )
    return config


def kubelet_argv(bin_dir: Path, node_ip: str) -> list[str]:
    state = CLUSTER / "kubelet"
    state.mkdir(parents=True, exist_ok=True)
    serving = f"kubelet-{REAL_NODE}-serving"
    for suffix in (".crt", ".key"):  # for the node IP of today
        (PKI / f"{serving}{suffix}").unlink(missing_ok=True)
    new_cert(serving, f"/CN={REAL_NODE}", "serverAuth", [f"IP:{node_ip}", f"DNS:{REAL_NODE}"])
    kubeconfig = write_kubeconfig(
        CLUSTER / "kubelet.kubeconfig", f"kubelet-{REAL_NODE}", f"system:node:{REAL_NODE}"
    )
    socket_path = CLUSTER / "containerd" / "containerd.sock"
    config = state / "config.yaml"
    config.write_text(
        f"""# written by deploy/testbed/cluster.py: rewritten on every `up --real-node`
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {node_ip}
port: {PORTS["kubelet"]}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {PORTS["kubelet-healthz"]}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {PKI / "ca.crt"}
authorization:
  mode: Webhook
tlsCertFile: {PKI / f"kubelet-{REAL_NODE}-serving.crt"}
tlsPrivateKeyFile: {PKI / f"kubelet-{REAL_NODE}-serving.key"}
containerRuntimeEndpoint: unix://{socket_path}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
enforceNodeAllocatable: []
protectKernelDefaults: false
makeIPTablesUtilChains: false
localStorageCapacityIsolation: false
clusterDomain: cluster.local
clusterDNS: []
staticPodPath: ""
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: /etc/resolv.conf
podPidsLimit: -1
registerNode: true
registerWithTaints: []
maxPods: 20
"""
    )
    return [
        str(bin_dir / "kubelet"),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={state / 'root'}",
        f"--cert-dir={state / 'pki'}",
        f"--hostname-override={REAL_NODE}",
        f"--node-ip={node_ip}",
        "--node-labels=type=real",
        "--v=2",
    ]


def real_node_tools() -> tuple[Path, Path]:
    """containerd and the CNI plugins of the Debian packages; the kubelet comes from build.sh."""
    containerd = shutil.which("containerd")
    if not containerd:
        raise ClusterError("--real-node: containerd is missing (apt-get install containerd)")
    if not shutil.which("runc"):
        raise ClusterError("--real-node: runc is missing (apt-get install runc)")
    cni_bin = Path("/usr/lib/cni")
    if not (cni_bin / "bridge").is_file():
        raise ClusterError(
            "--real-node: CNI plugins missing in /usr/lib/cni "
            "(apt-get install containernetworking-plugins)"
        )
    return Path(containerd), cni_bin


def load_image(args: argparse.Namespace) -> int:
    """Copy an image podman built into the real node's containerd (what `kind load` does):
    DOCKYARD_KUBE_IMAGE_LOADER="python3 deploy/testbed/cluster.py load-image"."""
    socket_path = CLUSTER / "containerd" / "containerd.sock"
    if not socket_path.exists() or running("containerd") is None:
        say(f"no real node: {args.image} stays where it is (kwok nodes need no image)")
        return 0
    copy_image(socket_path, args.image)
    return 0


def copy_image(socket_path: Path, image: str) -> None:
    archive = CLUSTER / "containerd" / f"load-{os.getpid()}.tar"
    saved = run(["podman", "save", "--format", "docker-archive", "-o", str(archive), image])
    if saved.returncode:
        raise ClusterError(f"podman save {image}: {saved.stderr.strip()}")
    base = ["ctr", "--address", str(socket_path), "-n", "k8s.io"]
    imported = run([*base, "images", "import", str(archive)])
    archive.unlink(missing_ok=True)
    if imported.returncode:
        raise ClusterError(f"ctr images import {image}: {imported.stderr.strip()}")
    say(f"imported {image} into containerd")


def import_images(socket_path: Path) -> None:
    """containerd cannot pull: bring the pause image (and the base image) from podman."""
    ctr = shutil.which("ctr")
    podman = shutil.which("podman")
    if not (ctr and podman):
        raise ClusterError("--real-node: ctr (containerd) and podman are needed to import images")
    base = ["ctr", "--address", str(socket_path), "-n", "k8s.io"]
    listed = run([*base, "images", "ls", "-q"])
    have = set(listed.stdout.split())
    wanted = [PAUSE_IMAGE]
    base_image = "localhost/dockyard/base:bookworm"
    if run(["podman", "image", "exists", base_image]).returncode == 0:
        wanted.append(base_image)
    for image in wanted:
        if image in have:
            continue
        if image == PAUSE_IMAGE and not pause_image_built():
            raise ClusterError("--real-node: could not build the pause image with podman")
        # a docker-archive names its image (RepoTags): ctr keeps that name
        copy_image(socket_path, image)


PAUSE_SOURCE = """package main

// The sandbox process of the testbed's real node: sleeps until SIGTERM or SIGINT.
import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
}
"""


def pause_image_built() -> bool:
    """A pause image: one static Go binary that sleeps until signalled, imported into podman."""
    if run(["podman", "image", "exists", PAUSE_IMAGE]).returncode == 0:
        return True
    work = CLUSTER / "pause"
    (work / "rootfs").mkdir(parents=True, exist_ok=True)
    (work / "main.go").write_text(PAUSE_SOURCE)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="", GO111MODULE="off")
    built = run(
        ["go", "build", "-ldflags=-s -w", "-o", str(work / "rootfs" / "pause"), "main.go"],
        cwd=work,
        env=env,
    )
    if built.returncode:
        say(f"go build of the pause binary failed: {built.stderr.strip()[-400:]}")
        return False
    archive = work / "rootfs.tar"
    subprocess.run(["tar", "-C", str(work / "rootfs"), "-cf", str(archive), "."], check=True)
    imported = run(
        ["podman", "import", "--change", 'ENTRYPOINT ["/pause"]', str(archive), PAUSE_IMAGE]
    )
    if imported.returncode:
        say(f"podman import of the pause image failed: {imported.stderr.strip()[-400:]}")
    return imported.returncode == 0


# --------------------------------------------------------------------------- commands


def up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    wanted = CONTROL_PLANE + (["containerd", "kubelet"] if args.real_node else [])
    running_now = [n for n in wanted if running(n)]
    if len(running_now) == len(wanted) and readyz_quietly():
        nodes = create_nodes(args.nodes)  # --nodes may ask for more than are there
        Launcher().wait(f"nodes {', '.join(nodes)} Ready", lambda: nodes_ready(nodes), 60, "kwok")
        say(f"already up ({', '.join(running_now)}); kubeconfig {KUBECONFIG}")
        print(f"export KUBECONFIG={KUBECONFIG}")
        return 0
    if known_components() and any(running(n) for n in known_components()):
        say("a partial cluster runs: stopping it first")
        leftover = stop(list(reversed(known_components())), strays_too=True)
        if leftover:
            raise ClusterError(f"could not stop {', '.join(leftover)}")
    elif strays():
        names = ", ".join(f"{exe} (pid {pid})" for pid, exe in strays())
        raise ClusterError(f"processes of an earlier cluster still run: {names}; run `down`")

    bin_dir = binaries()
    if args.real_node:
        containerd, cni_bin = real_node_tools()
        node_ip = host_ip()
        if not (bin_dir / "kubelet").is_file():
            raise ClusterError(f"binary kubelet is missing from {bin_dir}")
    ports = ["etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    if args.real_node:
        ports += ["kubelet", "kubelet-healthz"]
    for name in ports:
        host = node_ip if name == "kubelet" else "127.0.0.1"
        if not port_free(PORTS[name], host):
            raise ClusterError(
                f"port {PORTS[name]} ({name}) on {host} is in use; "
                f"set {port_env(name)} or stop its user"
            )
    make_pki()
    for path in (CLUSTER, LOGS, PIDS):
        path.mkdir(parents=True, exist_ok=True)
    PORTS_FILE.write_text(json.dumps(PORTS, indent=1) + "\n")  # what the other commands use

    launcher = Launcher()
    try:
        launcher.start("etcd", etcd_argv(bin_dir))
        took = launcher.wait(
            "etcd",
            lambda: healthz_insecure(PORTS["etcd"], "/health", scheme="http"),
            60,
            "etcd",
        )
        say(f"etcd ready in {took:.1f} s")
        launcher.start("kube-apiserver", apiserver_argv(bin_dir))
        took = launcher.wait("kube-apiserver /readyz", readyz, 120, "kube-apiserver")
        say(f"kube-apiserver ready in {took:.1f} s")
        launcher.start("kube-controller-manager", controller_manager_argv(bin_dir))
        launcher.start("kube-scheduler", scheduler_argv(bin_dir))
        argv, env = kwok_argv(bin_dir)
        launcher.start("kwok", argv, env)
        if "provisioner" in CONTROL_PLANE:
            launcher.start("provisioner", [sys.executable, str(PROVISIONER)])
        took = launcher.wait(
            "kube-controller-manager /healthz",
            lambda: healthz_insecure(PORTS["kube-controller-manager"]),
            60,
            "kube-controller-manager",
        )
        launcher.wait(
            "kube-scheduler /healthz",
            lambda: healthz_insecure(PORTS["kube-scheduler"]),
            60,
            "kube-scheduler",
        )
        nodes = create_nodes(args.nodes)
        if args.real_node:
            socket_path = CLUSTER / "containerd" / "containerd.sock"
            config = containerd_config(cni_bin)
            launcher.start("containerd", [str(containerd), f"--config={config}"])
            launcher.wait("containerd socket", socket_path.exists, 30, "containerd")
            import_images(socket_path)
            launcher.start("kubelet", kubelet_argv(bin_dir, node_ip))
            nodes.append(REAL_NODE)
        took = launcher.wait(
            f"nodes {', '.join(nodes)} Ready",
            lambda: nodes_ready(nodes),
            180,
            "kubelet" if args.real_node else "kwok",
        )
        say(f"{len(nodes)} nodes Ready in {took:.1f} s")
        launcher.wait(
            "service account default/default (kube-controller-manager)",
            lambda: api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            60,
            "kube-controller-manager",
        )
        install_snapshot_crds()
        launcher.wait(
            "snapshot.storage.k8s.io/v1 (the external-snapshotter's CRDs)",
            lambda: api("GET", "/apis/snapshot.storage.k8s.io/v1")[0] == 200,
            30,
            "kube-apiserver",
        )
        if "provisioner" in CONTROL_PLANE:
            launcher.wait(
                "StorageClass standard (provisioner)",
                lambda: api("GET", "/apis/storage.k8s.io/v1/storageclasses/standard")[0] == 200,
                30,
                "provisioner",
            )
    except BaseException:
        # nothing may be left running when up fails (Ctrl-C included)
        stop(list(reversed(list(launcher.children))), grace=5)
        if args.real_node:
            release_node()
        raise
    write_kubeconfig(KUBECONFIG, "admin", "dockyard-admin")
    say(f"up in {time.monotonic() - started:.1f} s: {', '.join(launcher.children)}")
    say(f"kubeconfig: {KUBECONFIG}")
    print(f"export KUBECONFIG={KUBECONFIG}")
    return 0


def readyz_quietly() -> bool:
    try:
        return readyz()
    except (OSError, ssl.SSLError, urllib.error.URLError):
        return False


def down(args: argparse.Namespace) -> int:
    started = time.monotonic()
    names = known_components()
    was_running = [n for n in names if running(n)]
    survivors = stop(list(reversed(names)), strays_too=True)
    if survivors:
        raise ClusterError(f"still running after SIGKILL: {', '.join(survivors)}")
    for name in names:
        cmd_file(name).unlink(missing_ok=True)
    if not args.keep_data and ETCD_DATA.exists():
        shutil.rmtree(ETCD_DATA)
    release_node()
    if not args.keep_data:
        # the real node's state belongs with the etcd data (its pods, its node object)
        shutil.rmtree(CLUSTER / "kubelet", ignore_errors=True)
        shutil.rmtree(CLUSTER / "volumes", ignore_errors=True)  # the provisioner's volumes
        shutil.rmtree(CLUSTER / "containerd" / "state", ignore_errors=True)
        shutil.rmtree(CLUSTER / "containerd" / "ipam", ignore_errors=True)
    KUBECONFIG.unlink(missing_ok=True)
    stopped = ", ".join(was_running) or "nothing was running"
    kept = "certificates kept" + (", etcd data kept" if args.keep_data else "")
    say(f"down in {time.monotonic() - started:.1f} s ({stopped}); {kept}")
    return 0


def restart_apiserver(args: argparse.Namespace) -> int:
    record = recorded("kube-apiserver")
    if not record:
        raise ClusterError("kube-apiserver was never started here: run `up` first")
    pid = running("kube-apiserver")
    started = time.monotonic()
    if pid:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            raise ClusterError(f"kube-apiserver (pid {pid}) survived SIGKILL")
        say(f"killed kube-apiserver (pid {pid}) with SIGKILL")
    # its threads may still hold the listening socket for a moment after the main one is gone
    port = PORTS["kube-apiserver"]
    deadline = time.monotonic() + 10
    while not port_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not port_free(port):
        raise ClusterError(f"port {port} (kube-apiserver) is still in use")
    launcher = Launcher()
    launcher.start("kube-apiserver", record["argv"], record.get("env"))
    try:
        took = launcher.wait("kube-apiserver /readyz", readyz, 120, "kube-apiserver")
    except BaseException:
        stop(["kube-apiserver"], grace=5)
        raise
    say(f"kube-apiserver ready again in {took:.1f} s ({time.monotonic() - started:.1f} s in all)")
    return 0


def status(args: argparse.Namespace) -> int:
    names = known_components()
    if not names:
        say("not up (no processes recorded in .cluster/pids)")
        return 1
    ok = True
    for name in names:
        pid = running(name)
        ok = ok and pid is not None
        state = f"running (pid {pid})" if pid else "NOT running"
        print(f"  {name:<24} {state}")
    missing = [n for n in CONTROL_PLANE if n not in names]
    if missing:
        ok = False
        print(f"  not started: {', '.join(missing)}")
    if ok:
        ready = readyz_quietly()
        print(f"  {'/readyz':<24} {'ok' if ready else 'NOT ok'}")
        ok = ready
    if ok:
        _, body = api("GET", "/api/v1/nodes")
        for node in body.get("items", []):
            state = "Ready" if node_ready(node) else "NotReady"
            print(f"  node {node['metadata']['name']:<19} {state}")
        print(f"export KUBECONFIG={KUBECONFIG}")
    return 0 if ok else 1


def node_count(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 500:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of nodes from 0 to 500")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_up = commands.add_parser("up", help="start the cluster (idempotent)")
    p_up.add_argument("--nodes", type=node_count, default=3, metavar="N", help="kwok nodes (3)")
    p_up.add_argument(
        "--real-node", action="store_true", help=f"also containerd + kubelet as {REAL_NODE}"
    )
    p_down = commands.add_parser("down", help="stop every process the cluster started")
    p_down.add_argument("--keep-data", action="store_true", help="keep the etcd data")
    commands.add_parser("restart-apiserver", help="kill -9 the apiserver and start it again")
    commands.add_parser("status", help="which processes run; exit 0 if all are up")
    p_load = commands.add_parser("load-image", help="copy a podman image to the real node")
    p_load.add_argument("image")
    args = parser.parse_args(argv)
    if PORTS_FILE.exists() and (args.command != "up" or any(map(running, known_components()))):
        PORTS.update(json.loads(PORTS_FILE.read_text()))  # the ports of the running cluster
    handler = {
        "up": up,
        "down": down,
        "restart-apiserver": restart_apiserver,
        "status": status,
        "load-image": load_image,
    }[args.command]
    if args.command in ("up", "restart-apiserver"):
        # an interrupted start takes down what it started: Ctrl-C and SIGTERM alike
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.command == "up" and bad_port_settings():
            raise ClusterError("; ".join(bad_port_settings()))
        return handler(args)
    except ClusterError as exc:
        print(f"cluster: {args.command} failed: {exc}", file=sys.stderr)
        tail = log_tail(exc.log)
        if tail:
            print(f"  last lines of {log_file(exc.log or '')}:\n{tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cluster: {args.command} interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
