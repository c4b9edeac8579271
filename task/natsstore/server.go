package natsstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configures [RunServer].
type ServerOptions struct {
	// Dir is where JetStream keeps its data; "" means a directory under
	// os.TempDir chosen by the server.
	Dir string
	// Host and Port to listen on for NATS clients. Default 127.0.0.1 and a
	// free port (Port 0).
	Host string
	Port int
	// ServerName names the server (and the JetStream node). Default
	// "taskd".
	ServerName string
}

// RunServer starts an embedded NATS server with JetStream and returns it
// once it accepts connections (waiting up to 10 s). Its ClientURL is what
// nats.Connect takes. Stop it with Shutdown and then WaitForShutdown; it
// starts goroutines that live until then.
func RunServer(opts ServerOptions) (*server.Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if opts.ServerName == "" {
		opts.ServerName = "taskd"
	}
	sopts := &server.Options{
		ServerName: opts.ServerName,
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		NoSigs:     true,
		NoLog:      true,
		// No system account: the server would start more goroutines and
		// connections than an embedded single node needs.
		NoSystemAccount: true,
	}
	sopts.StoreDir = opts.Dir
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("nats server: not ready for connections within 10s")
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("nats server: JetStream did not start")
	}
	return ns, nil
}
