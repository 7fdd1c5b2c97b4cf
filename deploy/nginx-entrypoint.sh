#!/bin/sh
# Entrypoint of the local Debian nginx image (deploy/build_images.sh nginx): deploy/nginx.conf names Docker's
# embedded DNS (127.0.0.11); under podman the network's DNS server is the one in /etc/resolv.conf. Write a copy
# of the mounted configuration with that resolver to /tmp and run nginx in the foreground on it.
set -eu
ns=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
sed "s/resolver 127\.0\.0\.11/resolver ${ns:-127.0.0.11}/" /etc/nginx/nginx.conf > /tmp/nginx.conf
nginx -t -q -c /tmp/nginx.conf
exec nginx -c /tmp/nginx.conf -g 'daemon off;' "$@"
