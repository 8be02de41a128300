module github.com/kafkasaga/kafkasaga/devstack

go 1.26.8
