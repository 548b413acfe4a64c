/** A resource type reached over the API: the group (empty for the core group), the served version, its kind and plural. */
export interface ApiResource {
  group: string;
  version: string;
  kind: string;
  plural: string;
}

/** `deployments.apps`, `configmaps`: how logs, metrics and /readyz name a resource. */
export function resourceName(resource: Pick<ApiResource, 'group' | 'plural'>): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

/** A namespaced object of `resource`. */
export interface NamespacedRef<R extends ApiResource = ApiResource> {
  resource: R;
  namespace: string;
  name: string;
}
