# Install rules and Debian packages (cpack -G DEB): two packages from one build,
#   balancer             balancer binary (playlist balancer + REST API), audience (rehearsals),
#                        balancer.service, /etc/balancer/{balancer,channels,caches,products}.json,
#                        the web player and operator dashboard in /usr/share/balancer/web
#   balancer-cache-node  cache_node binary, balancer-cache-node.service,
#                        /etc/balancer/cache_node.json
# Both create the system user `balancer`. Configure with -DCMAKE_INSTALL_PREFIX=/usr for
# packages (scripts/package.sh does): the units name the installed paths. See
# packaging/README.md and docs/operations.md § Packages and systemd.

include(GNUInstallDirs)

set(BALANCER_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)
# Paths the units and configs refer to. With the /usr prefix GNUInstallDirs puts the
# configuration in /etc; units go where Debian 12's systemd packages put theirs.
set(BALANCER_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(BALANCER_LIBEXECDIR ${CMAKE_INSTALL_FULL_LIBEXECDIR})
set(BALANCER_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/balancer)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(BALANCER_UNITDIR /lib/systemd/system)
else()
  set(BALANCER_UNITDIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()

foreach(unit balancer balancer-cache-node)
  configure_file(${BALANCER_PACKAGING_DIR}/systemd/${unit}.service.in
                 ${PROJECT_BINARY_DIR}/packaging/${unit}.service @ONLY)
endforeach()

# Component `balancer` → package balancer.
install(TARGETS balancer RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT balancer)
# The rehearsal tool (docs/operations.md § Rehearsing a venue) ships with the balancer.
install(TARGETS audience RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT balancer)
install(FILES ${BALANCER_PACKAGING_DIR}/etc/balancer.json ${BALANCER_PACKAGING_DIR}/etc/channels.json
              ${BALANCER_PACKAGING_DIR}/etc/caches.json ${BALANCER_PACKAGING_DIR}/etc/products.json
        DESTINATION ${BALANCER_CONFDIR} COMPONENT balancer)
install(FILES ${PROJECT_BINARY_DIR}/packaging/balancer.service DESTINATION ${BALANCER_UNITDIR} COMPONENT balancer)
install(PROGRAMS ${BALANCER_PACKAGING_DIR}/wait-ready DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/balancer
        COMPONENT balancer)
install(FILES ${BALANCER_PACKAGING_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/balancer
        COMPONENT balancer)
# The web player and the operator dashboard (web.dir of the packaged balancer.json), with the
# one npm asset they load, hls.js, from web/node_modules as web/package-lock.json pins it
# (scripts/package.sh runs scripts/web_install.sh first; the pages load nothing from a CDN).
# The tree keeps web/'s layout, which the balancer's /vendor/hls.min.js route reads.
set(BALANCER_WEB_DIR ${CMAKE_INSTALL_DATAROOTDIR}/balancer/web)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/web/player ${PROJECT_SOURCE_DIR}/web/admin
        DESTINATION ${BALANCER_WEB_DIR} COMPONENT balancer)
install(FILES ${PROJECT_SOURCE_DIR}/web/node_modules/hls.js/dist/hls.min.js
        DESTINATION ${BALANCER_WEB_DIR}/node_modules/hls.js/dist COMPONENT balancer)
install(FILES ${PROJECT_SOURCE_DIR}/web/node_modules/hls.js/LICENSE
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/balancer RENAME hls.js.LICENSE COMPONENT balancer)

# Component `cache_node` → package balancer-cache-node.
install(TARGETS cache_node RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cache_node)
install(FILES ${BALANCER_PACKAGING_DIR}/etc/cache_node.json DESTINATION ${BALANCER_CONFDIR} COMPONENT cache_node)
install(FILES ${PROJECT_BINARY_DIR}/packaging/balancer-cache-node.service DESTINATION ${BALANCER_UNITDIR}
        COMPONENT cache_node)
install(PROGRAMS ${BALANCER_PACKAGING_DIR}/wait-ready DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/balancer-cache-node
        COMPONENT cache_node)
install(FILES ${BALANCER_PACKAGING_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/balancer-cache-node
        COMPONENT cache_node)

# CPack: one .deb per component.
set(BALANCER_PACKAGE_MAINTAINER "Balancer maintainers <maintainers@balancer.invalid>"
    CACHE STRING "Maintainer field of the Debian packages")
set(BALANCER_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the packages (the part after the version)")
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "Packages: CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}; Debian packages want /usr "
                 "(scripts/package.sh sets it)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME balancer)
set(CPACK_PACKAGE_VENDOR "Balancer")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${BALANCER_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL balancer cache_node)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${BALANCER_PACKAGE_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${BALANCER_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Declared by hand: adduser (postinst creates the user), procps (/bin/kill of ExecReload=);
# dpkg-shlibdeps adds the libraries the binaries link.
set(CPACK_DEBIAN_BALANCER_PACKAGE_NAME balancer)
set(CPACK_DEBIAN_BALANCER_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_BALANCER_PACKAGE_DEPENDS "adduser, procps")
set(CPACK_DEBIAN_BALANCER_PACKAGE_SUGGESTS "balancer-cache-node")
set(CPACK_DEBIAN_BALANCER_PACKAGE_CONTROL_EXTRA
    ${BALANCER_PACKAGING_DIR}/debian/balancer/conffiles ${BALANCER_PACKAGING_DIR}/debian/balancer/postinst
    ${BALANCER_PACKAGING_DIR}/debian/balancer/prerm ${BALANCER_PACKAGING_DIR}/debian/balancer/postrm)
set(CPACK_COMPONENT_BALANCER_DESCRIPTION
    "HLS edge balancer with the mobile REST API
Rewrites live HLS playlists per viewer so chunk links lead to the nearest reachable
cache node (or origin), enforces stream and traffic limits with a fair waiting queue,
and serves the mobile app's API (accounts, channels, purchases, access check).
Runs as the systemd service balancer.service; configuration in /etc/balancer/.")

set(CPACK_DEBIAN_CACHE_NODE_PACKAGE_NAME balancer-cache-node)
set(CPACK_DEBIAN_CACHE_NODE_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_CACHE_NODE_PACKAGE_DEPENDS "adduser, procps")
set(CPACK_DEBIAN_CACHE_NODE_PACKAGE_CONTROL_EXTRA
    ${BALANCER_PACKAGING_DIR}/debian/balancer-cache-node/conffiles
    ${BALANCER_PACKAGING_DIR}/debian/balancer-cache-node/postinst
    ${BALANCER_PACKAGING_DIR}/debian/balancer-cache-node/prerm
    ${BALANCER_PACKAGING_DIR}/debian/balancer-cache-node/postrm)
set(CPACK_COMPONENT_CACHE_NODE_DESCRIPTION
    "HLS edge cache node for the Balancer
Serves HLS chunks at the venue: fetches each chunk from origin once however many
viewers ask at the same moment, streams it while it arrives, and keeps it on disk
across restarts (LMDB index, bounded size, least recently used evicted).
Runs as the systemd service balancer-cache-node.service; configuration in
/etc/balancer/cache_node.json, chunks in /var/cache/balancer-cache-node/.")

include(CPack)
