FROM busybox
# a comment before
RUN echo one \
# a comment inside the continuation is dropped
    two \

    three
RUN echo "a\\" && \
	echo tabs
LABEL a=b \
      c="d e"
RUN echo end \
