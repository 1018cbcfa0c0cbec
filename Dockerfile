# syntax=docker/dockerfile:1
# qfpurge: static binaries for worker, enqueue, dlq, rules, pause and fakeqianfan in a
# distroless image that runs as a non-root user. No secrets are baked in:
# credentials come from the environment at run time (see .env.example).

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/worker ./cmd/enqueue ./cmd/dlq ./cmd/rules ./cmd/pause ./cmd/fakeqianfan

# distroless/static: CA certificates (Qianfan is HTTPS), tzdata, /etc/passwd
# with the nonroot user (65532), no shell. The worker also embeds tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# The worker's monitor (asynqmon, /metrics, /healthz, /readyz) when
# --monitor-addr 0.0.0.0:8080 is given.
EXPOSE 8080
CMD ["worker"]
