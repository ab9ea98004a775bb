FROM busybox
RUN <<EOF
echo "hello $USER"
EOF
RUN <<-EOT bash
	echo tabs are stripped
	EOT
RUN <<"QUOTED" cat > /x && cat <<'SINGLE'
not $expanded
QUOTED
also ${not}
SINGLE
COPY <<EOF /etc/motd
Welcome $NAME
EOF
COPY <<-one <<two /dir/
	first
	one
second
two
RUN 3<<EOF cat /dev/fd/3
fd three
EOF
RUN ["echo", "<<EOF"]
ONBUILD RUN <<EOF
echo later
EOF
