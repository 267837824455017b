// Package systemd holds no Go code of its own: it carries the systemd unit, the
// environment file, the NRI pre-registration launcher and install.sh for hosts that run
// tollgated outside Kubernetes (or before the kubelet). Its tests verify the unit with
// systemd-analyze and run install.sh into a temporary root.
package systemd
