module github.com/kafkasaga/kafkasaga/system

go 1.26.8
