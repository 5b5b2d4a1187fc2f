import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { buildOpenApiDocument } from '../../src/http/openapi/document.ts';
import type { ApiResponse } from './service.ts';

type Json = Record<string, any>;

/**
 * Validates real responses against the OpenAPI document with Ajv (JSON Schema 2020-12, the dialect
 * of OpenAPI 3.1) — an implementation we did not write. Response objects are closed here
 * (unevaluatedProperties: false wherever the document lists properties): the document keeps them
 * open for clients, but a field a route sends and the document does not name is a defect.
 */
export function openApiChecker() {
  const document = closeObjects(structuredClone(buildOpenApiDocument()) as Json);
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  const ID = 'https://gateway.test/openapi.json';
  ajv.addSchema({ ...document, $id: ID });
  const compiled = new Map<string, ValidateFunction>();
  const validator = (pointer: string) => {
    let fn = compiled.get(pointer);
    if (!fn) {
      fn = ajv.compile({ $ref: `${ID}#${pointer}` });
      compiled.set(pointer, fn);
    }
    return fn;
  };
  const pointerPart = (part: string) => part.replaceAll('~', '~0').replaceAll('/', '~1');

  return {
    document,
    /**
     * The response's status must be documented for the operation, with its content type, and a
     * JSON body must match the schema. Returns the errors (empty when it conforms).
     */
    check(method: string, pathTemplate: string, res: ApiResponse): string[] {
      const operation = document.paths?.[pathTemplate]?.[method.toLowerCase()];
      if (!operation) return [`${method} ${pathTemplate} is not documented`];
      const status = String(res.status);
      const documented = operation.responses[status] ?? operation.responses[`${status[0]}XX`];
      if (!documented) return [`${method} ${pathTemplate}: status ${status} is not documented`];
      const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
      if (!documented.content) return res.text === '' ? [] : [`${status} has a body but none is documented`];
      if (!documented.content[contentType]) {
        return [`${method} ${pathTemplate} ${status}: content type '${contentType}' is not documented`];
      }
      const errors: string[] = [];
      for (const name of Object.keys(documented.headers ?? {})) {
        const header = documented.headers[name];
        if (header.required && !res.headers.has(name)) errors.push(`header ${name} missing`);
      }
      if (!contentType.includes('json')) return errors;
      const statusKey = operation.responses[status] ? status : `${status[0]}XX`;
      const pointer = `/paths/${pointerPart(pathTemplate)}/${method.toLowerCase()}/responses/${statusKey}/content/${pointerPart(contentType)}/schema`;
      const validate = validator(pointer);
      if (!validate(res.body)) {
        for (const e of validate.errors ?? [])
          errors.push(`${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
      }
      return errors;
    },
  };
}

function closeObjects(node: any): any {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (node === null || typeof node !== 'object') return node;
  for (const key of Object.keys(node)) node[key] = closeObjects(node[key]);
  if (node.properties && typeof node.properties === 'object' && node.additionalProperties === undefined) {
    node.unevaluatedProperties = false;
  }
  return node;
}
