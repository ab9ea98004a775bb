# syntax=docker/dockerfile:1.7
ARG GO_VERSION=1.22
ARG BASE=alpine:${GO_VERSION}

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
WORKDIR /src
COPY --link go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=.,target=/src,rw \
    --network=none \
    go build -o /out/app ./cmd/app

FROM ${BASE}
COPY --from=build --chown=app:app --chmod=0755 /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--help"]
