#!/usr/bin/env bash
# Refresh the vendored TradingView lightweight-charts (the dashboard's candlestick chart).
#
#   scripts/vendor_lightweight_charts.sh [VERSION]      (default: the version vendored now)
#
# Fetches the package from the npm registry with `npm pack` (npm checks the registry's
# integrity hash), checks it against the registry's published shasum, and copies the
# standalone production build and its licence into bot/web/static/vendor/lightweight-charts/,
# with a VERSION note. Nothing is fetched at run time: the dashboard serves these files itself.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=bot/web/static/vendor/lightweight-charts
version=${1:-$(sed -n 's/^version: //p' "$dest/VERSION" 2>/dev/null || true)}
if [[ -z "$version" ]]; then
    echo "usage: $0 VERSION (no $dest/VERSION to read the current one from)" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "lightweight-charts@$version" >/dev/null)
tarball="$work/lightweight-charts-$version.tgz"
expected=$(npm view "lightweight-charts@$version" dist.shasum)
actual=$(sha1sum "$tarball" | cut -d' ' -f1)
if [[ "$expected" != "$actual" ]]; then
    echo "lightweight-charts $version: tarball sha1 $actual differs from the registry's $expected" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/lightweight-charts.standalone.production.js" "$dest/"
cp "$work/package/LICENSE" "$dest/LICENSE"
{
    echo "package: lightweight-charts (TradingView, Inc.), Apache-2.0, see LICENSE"
    echo "version: $version"
    echo "source: npm registry, lightweight-charts-$version.tgz, sha1 $actual"
    echo "file: dist/lightweight-charts.standalone.production.js, sha256 $(sha256sum "$dest/lightweight-charts.standalone.production.js" | cut -d' ' -f1)"
    echo "refresh: scripts/vendor_lightweight_charts.sh [VERSION]"
} > "$dest/VERSION"
echo "vendored lightweight-charts $version into $dest"
