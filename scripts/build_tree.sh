# Sourced by scripts/demo.sh and scripts/test.sh.
#
# remake_tree_if_moved DIR: a build tree configured for another checkout or at another path (the
# folder moved, or a tree copied in from elsewhere) is refused by CMake ("does not match the
# source ... used to generate cache"). It holds build output only: it is removed, with a line
# saying so, and the caller's cmake makes it again for this checkout.
remake_tree_if_moved() {
  local tree=$1 cache="$1/CMakeCache.txt" home cache_dir
  [[ -f $cache ]] || return 0
  home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
  cache_dir=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$cache")
  if [[ $(realpath -m "$home") != $(realpath -m "$PWD") || $(realpath -m "$cache_dir") != $(realpath -m "$tree") ]]; then
    echo "$tree was configured for $home (as $cache_dir): made again for this checkout" >&2
    rm -rf "$tree"
  fi
}
