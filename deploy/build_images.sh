#!/usr/bin/env bash
# Builds the service images with podman and nothing but this machine's package registries (no Docker Hub):
#
#   deploy/build_images.sh            # base images (cached), scratch-serve:latest (full) and scratch-serve:slim
#   deploy/build_images.sh full       # or only one target: full | slim | nginx
#
# 1. Base images from Debian packages: `mmdebstrap` writes a bookworm root file system (Python 3.11 with a venv
#    at /opt/venv, the same with gcc and the Python headers for building the wheel with the compiled kernel,
#    or nginx) to a tar, `podman import` turns it into a local image. Each is built once and kept (delete it
#    with `podman rmi` to rebuild): localhost/scratch-serve-base:bookworm, localhost/scratch-serve-builder:bookworm
#    and localhost/scratch-serve-nginx:bookworm.
# 2. The service image from the Dockerfile with that base (`--build-arg BASE_IMAGE=...`; the Dockerfile's
#    default, python:3.11-slim with python:3.11 as the builder, is for machines that reach Docker Hub). pip inside the build reaches the
#    registries through the host's network (`--network host`) and reads this machine's own pip
#    configuration, mounted read-only: every setting `pip config list` shows (files and PIP_* variables,
#    merged into one pip.conf), every file or folder those settings name, and the CA certificates.
#    `--format docker`: the default OCI format drops the Dockerfile's HEALTHCHECK.
#
# Podman reads ./containers.conf (CONTAINERS_CONF): the defaults fail here (setrlimit, hybrid cgroups).
# Figures (build seconds, image sizes) are printed and appended to $BUILD_DIR/build_times.tsv.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/containers.conf}"
BUILD_DIR="${BUILD_DIR:-$ROOT/.cache/images}"
SUITE="${SUITE:-bookworm}"
BASE_IMAGE="localhost/scratch-serve-base:$SUITE"
BUILDER_IMAGE="localhost/scratch-serve-builder:$SUITE"
NGINX_IMAGE="localhost/scratch-serve-nginx:$SUITE"
PIP="${PIP:-$(command -v pip3 || command -v pip || echo "$ROOT/.venv/bin/pip")}"
[ -x "$ROOT/.venv/bin/pip" ] && PIP="$ROOT/.venv/bin/pip"
mkdir -p "$BUILD_DIR"
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(nginx full slim)

log() { echo "[build_images $(date -u +%H:%M:%S)] $*" >&2; }
record() { printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$1" "$2" "$3" >> "$BUILD_DIR/build_times.tsv"; }
size_of() { podman image inspect --format '{{.Size}}' "$1"; }

# A Debian root file system as a local image: debootstrap_image IMAGE PACKAGES HOOK CHANGES...
debian_image() {
    local image="$1" packages="$2" hook="$3"; shift 3
    if podman image exists "$image"; then log "$image exists (podman rmi it to rebuild)"; return; fi
    local tar="$BUILD_DIR/${image##*/}.tar" t0=$SECONDS
    tar="${tar/:/-}"
    log "mmdebstrap $SUITE ($packages) -> $tar"
    mmdebstrap --variant=apt --include="$packages" --customize-hook="$hook" \
        --customize-hook='chroot "$1" sh -c "apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*"' \
        "$SUITE" "$tar" >&2
    local changes=(); for c in "$@"; do changes+=(--change "$c"); done
    podman import "${changes[@]}" "$tar" "$image" >/dev/null
    rm -f "$tar"
    log "$image: $((SECONDS - t0)) s, $(size_of "$image") bytes"; record "$image" "$((SECONDS - t0))" "$(size_of "$image")"
}

# podman build -v options: this machine's pip configuration (merged) and everything it names, the CA certificates.
pip_mounts() {
    local conf="$BUILD_DIR/pip.conf"
    "$PIP" config list | python3 -c '
import re, sys
sections = {}
for line in sys.stdin:
    m = re.match(r"^(?::env:|[\w-]+)\.([\w-]+)=(.*)$", line.strip())
    if not m:
        continue
    section = "global" if line.startswith(":env:") else line.split(".", 1)[0]
    value = m.group(2).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\x27\"":
        value = value[1:-1]
    sections.setdefault(section, {}).setdefault(m.group(1), value)   # the first source listed wins
for section, items in sections.items():
    print(f"[{section}]")
    for key, value in items.items():
        print(f"{key} = {value}")
' > "$conf"
    echo "-v $conf:/etc/pip.conf:ro"
    # every absolute path or file:// URL in it (a .../simple index: its parent, whose files/ the index links to)
    grep -oE '(file://)?/[^ ]+' "$conf" | sort -u | while read -r ref; do
        local path="${ref#file://}"
        [ "$ref" != "$path" ] && [ "$(basename "$path")" = simple ] && path="$(dirname "$path")"
        case "$path" in /etc/ssl/certs/*) continue ;; esac   # mounted with its folder below
        [ -e "$path" ] && echo "-v $path:$path:ro"
    done
    for certs in /etc/ssl/certs /usr/share/ca-certificates /usr/local/share/ca-certificates; do
        [ -d "$certs" ] && echo "-v $certs:$certs:ro"
    done
}

build_service() {  # build_service TARGET TAG
    local target="$1" tag="$2" t0=$SECONDS
    debian_image "$BASE_IMAGE" python3,python3-venv,ca-certificates,passwd \
        'chroot "$1" python3 -m venv /opt/venv' \
        'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENV LANG=C.UTF-8' 'CMD ["python3"]'
    # the same Python with a C compiler and its headers: the wheel with the compiled kernel is built there
    debian_image "$BUILDER_IMAGE" python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates \
        'chroot "$1" python3 -m venv /opt/venv' \
        'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENV LANG=C.UTF-8' 'CMD ["python3"]'
    # shellcheck disable=SC2046
    log "podman build --target $target -> $tag"
    podman build --format docker --network host --target "$target" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg "BUILDER_IMAGE=$BUILDER_IMAGE" \
        $(pip_mounts) -t "$tag" -f "$ROOT/Dockerfile" "$ROOT" >&2
    log "$tag: $((SECONDS - t0)) s, $(size_of "$tag") bytes"; record "$tag" "$((SECONDS - t0))" "$(size_of "$tag")"
}

for target in "${targets[@]}"; do
    case "$target" in
        nginx) debian_image "$NGINX_IMAGE" nginx-light,ca-certificates,wget \
                   "copy-in $ROOT/deploy/nginx-entrypoint.sh /usr/local/bin" \
                   'ENTRYPOINT ["/usr/local/bin/nginx-entrypoint.sh"]' 'EXPOSE 80' 'STOPSIGNAL SIGQUIT' ;;
        full)  build_service full scratch-serve:latest ;;
        slim)  build_service slim scratch-serve:slim ;;
        *) echo "unknown target $target (full | slim | nginx)" >&2; exit 2 ;;
    esac
done
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'scratch-serve' >&2 || true
