// Package browsertest drives lbclient's debug page (runtime/lbdebug) in a
// real headless Chromium and checks what it shows for known traffic. It is
// a module of its own so that the browser driver's dependencies reach no
// user of lbclient; scripts/test runs it, after installing Debian's
// chromium when it is missing.
package browsertest
