/** API servers reject or truncate long warnings; kubectl prints each on one line. */
export const WARNING_SOFT_LIMIT = 120;
export const WARNING_HARD_LIMIT = 256;

export function clampWarning(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length <= WARNING_HARD_LIMIT ? oneLine : `${oneLine.slice(0, WARNING_HARD_LIMIT - 1)}…`;
}

/** Qualified-name part of an annotation key (the API server prefixes audit annotations with the webhook name). */
const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function isValidAnnotationNamePart(key: string): boolean {
  return key.length > 0 && key.length <= 63 && NAME_PART.test(key);
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isValidLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}
