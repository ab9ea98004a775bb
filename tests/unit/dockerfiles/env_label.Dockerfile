FROM scratch
ENV legacy value with spaces
ENV A=1 B="two words" C='single $A' D=escaped\ space
ENV E=
LABEL "com.example.vendor"="ACME" version=1.0 multi="line\
 joined"
LABEL description This is legacy
MAINTAINER Jane Doe <jane@example.com>
