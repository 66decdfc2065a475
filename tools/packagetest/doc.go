// Package packagetest tests the packages `make package` builds: it builds
// them, inspects both formats with dpkg-deb and rpm, installs, upgrades,
// removes and purges the debs inside a copy of the Debian 12 test root, and
// verifies package signatures made with a throw-away OpenPGP key. It has no
// code of its own, only tests; `make package-test` runs them.
//
// It lives in the tools module because packaging is a build concern and the
// tools module pins nfpm; the test root comes from engine/testtarget.
package packagetest
