package messaging

import (
	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// scramClient adapts xdg-go/scram, the SCRAM implementation Sarama's own
// examples use, to Sarama's SCRAMClient interface.
func scramClient(mechanism string) func() sarama.SCRAMClient {
	fn := scram.SHA256
	if mechanism == sarama.SASLTypeSCRAMSHA512 {
		fn = scram.SHA512
	}
	return func() sarama.SCRAMClient { return &scramConversation{hash: fn} }
}

type scramConversation struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramConversation) Begin(user, password, authzID string) error {
	client, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = client.NewConversation()
	return nil
}

func (s *scramConversation) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *scramConversation) Done() bool                            { return s.conv.Done() }
