// Package adminfn is the admin function: setup, the admin pages and the
// admin API (but documents), and every path no other function serves.
package adminfn

import (
	"net/http"

	"github.com/aigateway/aigateway/shared/admin"
	"github.com/aigateway/aigateway/shared/app"
)

// Part is the admin function.
var Part = app.Part{Function: app.FnAdmin, Build: build}

func build(c *app.Core) (http.Handler, error) {
	return admin.New(admin.Deps{Guard: c.Guard, Keys: c.Keys, Settings: c.Settings, Models: c.Models,
		Conversations: c.Conversations, Usage: c.Meter}, c.Config.MaxBody), nil
}
