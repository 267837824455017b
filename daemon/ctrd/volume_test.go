package ctrd

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/platforms"

	"tollgate.dev/tollgate/policy"
)

func TestResolveVolume(t *testing.T) {
	f := newFixture(t)
	host := platforms.DefaultString()
	cVol, cOther := configDigest("vol "+host), configDigest("vol elsewhere")
	mVol := f.manifest(cVol, true)
	mOther := f.manifest(cOther, false) // another platform, never pulled
	idx := f.index(onPlatform(mVol, host), onPlatform(mOther, "linux/s390x"))
	f.image("ghcr.io/acme/tools:1", idx)
	f.image(cVol.String(), idx) // the CRI plugin's record by image ID
	f.image("ghcr.io/acme/tools:by-manifest", mVol)
	mLost := f.manifest(configDigest("lost"), false)
	f.image("ghcr.io/acme/lost:1", mLost) // the record's manifest is not in the store
	mS390, mPPC := f.manifest(configDigest("s390x"), true), f.manifest(configDigest("ppc64le"), true)
	foreign := f.index(onPlatform(mS390, "linux/s390x"), onPlatform(mPPC, "linux/ppc64le"))
	f.image("ghcr.io/acme/foreign:1", foreign)
	c := f.client()
	ctx := context.Background()

	t.Run("index target: the host platform's config, every digest leading to it", func(t *testing.T) {
		got, err := c.ResolveVolume(ctx, idx.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		want := policy.Image{Ref: "ghcr.io/acme/tools:1", Repository: "ghcr.io/acme/tools",
			ConfigDigest: cVol.String(), Digests: strs(mVol, idx)}
		if got.Ref != want.Ref || got.Repository != want.Repository || got.ConfigDigest != want.ConfigDigest ||
			strings.Join(got.Digests, ",") != strings.Join(want.Digests, ",") {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("manifest target: named by the record with that target", func(t *testing.T) {
		got, err := c.ResolveVolume(ctx, mVol.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		if got.Ref != "ghcr.io/acme/tools:by-manifest" || got.ConfigDigest != cVol.String() {
			t.Errorf("got %+v", got)
		}
	})
	for _, tc := range []struct{ name, target, want string }{
		{"no record with that target", configDigest("nothing").String(), "no image in containerd namespace"},
		{"record whose content is missing", mLost.Digest.String(), "no image in containerd namespace"},
		{"no manifest for this platform", foreign.Digest.String(), "no manifest for platform"},
		{"not a digest", "../../etc", "image volume target"},
		{"empty", "", "image volume target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.ResolveVolume(ctx, tc.target)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
}
