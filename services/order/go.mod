module github.com/kafkasaga/kafkasaga/services/order

go 1.26.8
