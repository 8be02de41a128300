module github.com/kafkasaga/kafkasaga/orchestrator

go 1.26.8
