// Package deploy checks the deployment files at the repository root, the
// Dockerfile and docker-compose.yml, which no test run here can start: its
// tests load the compose file as docker compose does and hold it to the
// services' own configuration (ports, variables, defaults).
package deploy
