module github.com/ctrip-pay/pipeline/services/webhook-sender

go 1.26.8
