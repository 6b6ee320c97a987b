/**
 * Label selectors as the API server reads them from `?labelSelector=`: equality
 * (`k=v`, `k==v`), inequality (`k!=v`), existence (`k`, `!k`), comma-joined (AND).
 * Set-based forms (`k in (a,b)`) are refused rather than misread.
 */
export type LabelRequirement =
  | { readonly key: string; readonly op: '=' | '!='; readonly value: string }
  | { readonly key: string; readonly op: 'exists' | '!exists' };

export type LabelSelector = readonly LabelRequirement[];

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function parseLabelSelector(text: string): LabelSelector {
  if (!text.trim()) return [];
  return text.split(',').map((part): LabelRequirement => {
    const term = part.trim();
    const match = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (match) {
      const [, key = '', op, value = ''] = match;
      if (!KEY.test(key) || !VALUE.test(value)) throw new Error(`invalid requirement ${JSON.stringify(term)}`);
      return { key, op: op === '!=' ? '!=' : '=', value };
    }
    const negated = term.startsWith('!');
    const key = negated ? term.slice(1) : term;
    if (!KEY.test(key)) throw new Error(`unsupported requirement ${JSON.stringify(term)}`);
    return { key, op: negated ? '!exists' : 'exists' };
  });
}

export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  return selector.every((r) => {
    const value = labels?.[r.key];
    switch (r.op) {
      case '=':
        return value === r.value;
      case '!=':
        return value !== r.value;
      case 'exists':
        return value !== undefined;
      case '!exists':
        return value === undefined;
    }
  });
}
