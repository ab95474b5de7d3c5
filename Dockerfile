# Builds the rapport binary in a Go image and runs it from a small one.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/rapport ./cmd/rapport

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rapport /usr/local/bin/rapport
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rapport"]
CMD ["serve"]
