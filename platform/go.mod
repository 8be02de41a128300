module github.com/kafkasaga/kafkasaga/platform

go 1.26.8
