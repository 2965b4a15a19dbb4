#!/bin/bash
# Docker HEALTHCHECK for the Switchyard image, which has no curl or wget: GET /health over bash's
# /dev/tcp and succeed only on an HTTP 200 status line. Port: SWITCHYARD_PORT, else 5000.
set -eu
port="${SWITCHYARD_PORT:-5000}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status_line <&3
exec 3<&-
case "${status_line}" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "unhealthy: ${status_line:-no answer}" >&2; exit 1 ;;
esac
