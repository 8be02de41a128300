module github.com/kafkasaga/kafkasaga/services/payment

go 1.26.8
