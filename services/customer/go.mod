module github.com/kafkasaga/kafkasaga/services/customer

go 1.26.8
