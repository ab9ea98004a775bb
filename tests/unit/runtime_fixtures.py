"""Shared inputs of the runtime spec tests: the busybox user files, an image, one spec builder."""

from __future__ import annotations

from dockyard.runtime.linuxspec import DeviceNode
from dockyard.runtime.spec import RunOptions, build_spec, merge_config, resolve_user

CID = "d8aa9a53fc4bdcddb4625a72f73ba3edca55f1e4e4b86f22007bd33727a2f7ca"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
CTR = "/var/lib/dockyard/containers/" + CID
SLEEP = ["sleep", "100"]
# The image built by `docker build` from: FROM busybox / ENV A=img B=img2 PATH=/imgbin:/bin /
# LABEL x=1 y=2 / WORKDIR /srv / USER 0:0 / STOPSIGNAL SIGUSR1 / VOLUME /vol /
# ENTRYPOINT ["/bin/echo", "ep"] / CMD ["c1", "c2"]
IMAGE = {
    "User": "0:0",
    "Env": ["PATH=/imgbin:/bin", "A=img", "B=img2"],
    "Entrypoint": ["/bin/echo", "ep"],
    "Cmd": ["c1", "c2"],
    "Volumes": {"/vol": {}},
    "WorkingDir": "/srv",
    "Labels": {"x": "1", "y": "2"},
    "StopSignal": "SIGUSR1",
}
ZERO = DeviceNode("/dev/zero", "c", 1, 5, 0o666, 0, 0)


def spec_for(opts: RunOptions, image: dict | None = None, **kw) -> dict:
    config = merge_config(image or {}, opts, container_id=CID, host_hostname="vm")
    user = resolve_user(config["User"], PASSWD, GROUP, opts.group_add)
    kw.setdefault("device_nodes", {"/dev/zero": [ZERO]})
    kw.setdefault("volume_sources", {"/data": "/vols/data", "/vol": "/vols/vol"})
    return build_spec(
        config,
        opts,
        rootfs=CTR + "/rootfs",
        container_id=CID,
        user=user,
        cgroups_path="/docker/" + CID,
        resolv_conf=CTR + "/resolv.conf",
        hosts=CTR + "/hosts",
        hostname_file=CTR + "/hostname",
        init_path=kw.pop("init_path", "/usr/bin/docker-init"),
        **kw,
    )


NET_FILES = [
    {"destination": d, "type": "bind", "source": f"{CTR}/{d[5:]}", "options": ["rbind", "rprivate"]}
    for d in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")
]
SHM = {
    "destination": "/dev/shm",
    "type": "tmpfs",
    "source": "shm",
    "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
}
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]
