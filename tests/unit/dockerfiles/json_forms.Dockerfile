FROM busybox
CMD ["a", "b"]
CMD [ "spaced" , "out" ]
CMD ['single', 'quotes']
CMD ["unterminated"
CMD [1, 2
CMD {"not": "an array"}
CMD []
COPY ["a", "b", "/c/"]
ENTRYPOINT ["sh", "-c", "echo \"quoted\" \u00e9"]
