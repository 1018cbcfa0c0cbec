# syntax=docker/dockerfile:1
# qfpurge: one static binary, qfpurge (worker, enqueue, dlq, pause, rules), in
# a distroless image that runs as a non-root user. No secrets are baked in:
# credentials come from the environment at run time (see .env.example).
#
#   docker build -t qfpurge .                                   # the image compose runs
#   docker build --build-arg QFPURGE_REVISION="$(git rev-parse HEAD)" -t qfpurge .
#                          # `qfpurge version` names that commit (.git stays out of the context)
#   docker build --target fakeqianfan -t qfpurge-fakeqianfan .  # the demo's fake Qianfan

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context, so Go records no revision: the build
# argument stamps it (qfpurge version shows "unknown" without it).
ARG QFPURGE_REVISION=""
ARG QFPURGE_REVISION_TIME=""
RUN go build -trimpath -ldflags="-s -w -X github.com/qfpurge/qfpurge/cmd/internal/app.revision=${QFPURGE_REVISION} -X github.com/qfpurge/qfpurge/cmd/internal/app.revisionTime=${QFPURGE_REVISION_TIME}" -o /out/ ./cmd/qfpurge

# The fake Qianfan is a developer tool: built only for the fakeqianfan target.
FROM build AS build-fake
RUN go build -trimpath -ldflags="-s -w" -o /fake/ ./cmd/fakeqianfan

# distroless/static: CA certificates, tzdata, /etc/passwd with the nonroot
# user (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot AS fakeqianfan
COPY --from=build-fake /fake/fakeqianfan /usr/local/bin/fakeqianfan
USER 65532:65532
CMD ["fakeqianfan"]

# The default target, last: qfpurge alone. CA certificates (Qianfan is
# HTTPS); the worker also embeds tzdata.
FROM gcr.io/distroless/static-debian12:nonroot AS qfpurge
COPY --from=build /out/qfpurge /usr/local/bin/qfpurge
USER 65532:65532
# The worker's monitor (asynqmon, /metrics, /healthz, /readyz) when
# --monitor-addr 0.0.0.0:8080 is given.
EXPOSE 8080
CMD ["qfpurge", "worker"]
