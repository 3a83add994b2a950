/**
 * Herald's gateway. Start at {@link io.herald.gateway.HeraldMain} (command line) or
 * {@link io.herald.gateway.Herald} (a node, assembled in flow order). Packages, in the order a
 * batch meets them: {@code http} (intake, status, devices), {@code journal} (durable intake,
 * replay), {@code pipeline} (the rings: resolve, admit, dispatch, record), {@code registry}
 * (users, devices, profiles, consent), {@code admission} (rate limit, deferral), {@code connector} (APNs, FCM, SMS), {@code tracking}
 * (states and counts); beside them {@code config}, {@code redis}, {@code metrics}, {@code sandbox}.
 * This package assembles the others and nothing depends on it; the packages form no cycle
 * ({@code PackageDependenciesTest}; the order is in docs/architecture.md §1).
 */
package io.herald.gateway;
