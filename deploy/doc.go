// Package deploy checks the files at the repository root that no test run
// here can start. Its tests load docker-compose.yml as docker compose does
// and hold it and the Dockerfile to the services' own configuration (ports,
// variables, defaults), and hold README.md and docs/*.md to the repository:
// the tests, paths, links and Makefile targets they name must exist.
package deploy
