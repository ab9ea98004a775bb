FROM busybox:1.36 as base
ARG VERSION
ARG FLAVOR=plain OTHER
ADD --chown=1000:1000 --checksum=sha256:abc https://example.com/a.tar.gz /opt/
ADD ["with space.tar", "/dst dir/"]
EXPOSE 8080/tcp 53/udp 80
VOLUME ["/data", "/logs"]
VOLUME /var/cache /tmp
USER app:app
WORKDIR /app
ONBUILD RUN echo triggered
ONBUILD COPY . /src
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --start-interval=2s --retries=3 \
  CMD curl -f http://localhost/ || exit 1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN ["/bin/echo", "exec form"]
RUN echo shell form
CMD echo "shell cmd"
ENTRYPOINT exec top -b
FROM base
HEALTHCHECK NONE
HEALTHCHECK CMD ["/bin/check", "--quick"]
ENTRYPOINT []
