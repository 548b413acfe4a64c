/**
 * Config checksums: the public surface for the webhook action, the rollout controller and the
 * offline audit. See docs/config-checksum.md.
 */
export {
  computePodSpecChecksum,
  computeWorkloadChecksum,
  missingWarning,
  ChecksumKeyMissingError,
  DEFAULT_CHECKSUM_OPTIONS,
  type ChecksumOptions,
  type ConfigChecksum,
  type MissingConfig,
  type WorkloadChecksum,
} from './compute.js';
export { checksumV2, encodeV2, hmacV2, namespaceKey, isChecksumValue, CHECKSUM_VERSION, ENCODING_HEADER_V2, NAMESPACE_KEY_SALT, EntryTag, type SourceSnapshot } from './encoding.js';
export { generateChecksumKey, loadChecksumKey, ChecksumKeyError, MIN_CHECKSUM_KEY_BYTES } from './key.js';
export { locatePodTemplate, workloadKindOf, PodTemplateError, WORKLOAD_KINDS, type PodTemplateLocation, type WorkloadKind } from './pod-template.js';
export { ConfigReadError, readConfigSources, type ReadLimits } from './read.js';
export { collectReferences, type ConfigReference, type ReferenceOptions } from './references.js';
export {
  stampConfigChecksum,
  isValidAnnotationKey,
  DEFAULT_CHECKSUM_ANNOTATION,
  type StampConfigChecksumParams,
} from './stamp-config-checksum.js';
