package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

// FuzzImport feeds arbitrary bytes to Import as a compose file. It must never panic, must answer
// bad input with model.Problems that name the file, and what it does import must be a valid model.
func FuzzImport(f *testing.F) {
	for _, seed := range []string{
		"services:\n  web:\n    image: nginx\n",
		"services:\n  web:\n    image: nginx\n    deploy:\n      replicas: three\n",
		"name: shop\nservices:\n  api:\n    build: .\n    environment:\n      DB_URL: postgres://u:p@db:5432/x\n      CACHE_HOST: cache\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: postgres:16\n    healthcheck: {test: [CMD, pg_isready]}\n  cache:\n    image: redis\n",
		"x-env: &env\n  KAFKA_BROKERS: kafka:9092,other:9092\nservices:\n  a:\n    image: a\n    environment: *env\n    links: [kafka:bus]\n  kafka:\n    image: bitnami/kafka\n    profiles: [mq]\n",
		"services:\n  a:\n    image: ${IMAGE:-a}\n    command: [\"./a\", \"--upstream=http://b:80\", \"${ARG}\"]\n    secrets: [s]\n  b:\n    image: b\n    scale: 0\nsecrets:\n  s:\n    file: ./s.txt\n",
		"services:\n  a:\n    extends: b\n  b:\n    image: b\n    networks:\n      n:\n        aliases: [bee]\nnetworks:\n  n: {}\n",
		"version: '3'\nservices:\n  a:\n    image: a\n    environment:\n      - A=$$B\n      - C\n",
		"services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
		"services:\n  web: !reset {}\n  db:\n    image: mongo\n    ports: !override [\"27017:27017\"]\n---\nservices:\n  api:\n    image: x\n    env_file: [{path: missing.env, required: false}]\n",
		"include:\n  - other.yaml\nservices:\n  x:\n    image: x\n    healthcheck: {test: [NONE]}\n",
		"services: {}\n",
		"- a\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		LooksLikeCompose(data)
		p := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}, Name: "fuzz"})
		if err != nil {
			var ps model.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not model.Problems: %v", err, err)
			}
			for _, pr := range ps {
				if pr.File == "" {
					t.Fatalf("problem without a file: %v", pr)
				}
			}
			return
		}
		if ps := model.Validate(sys); len(ps) > 0 {
			t.Fatalf("imported system is invalid:\n%v", ps)
		}
	})
}
