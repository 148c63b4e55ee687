"""OpenAPI shapes of the probe area's request bodies, named with $ref by
the routes' docstrings and collected by the app factory."""
import yaml

DEFINITIONS = yaml.safe_load("""
CheckInBody:
  type: object
  properties:
    probe_cc: {type: string, example: IT}
    probe_asn: {type: string, example: AS3269}
    platform: {type: string, example: android}
    software_name: {type: string}
    software_version: {type: string}
    on_wifi: {type: boolean}
    charging: {type: boolean}
    run_type:
      type: string
      enum: [manual, timed]
    web_connectivity:
      type: object
      properties:
        category_codes:
          type: array
          items: {type: string}
CheckInV2Body: {type: object}
GeolookupBody:
  type: object
  properties:
    addresses:
      type: array
      items: {type: string}
RegisterBody:
  type: object
  properties:
    password: {type: string}
    platform: {type: string}
    probe_asn: {type: string}
    probe_cc: {type: string}
    software_name: {type: string}
    software_version: {type: string}
    supported_tests:
      type: array
      items: {type: string}
LoginBody:
  type: object
  properties:
    username: {type: string, description: the client_id from register}
    password: {type: string}
BouncerNetTestsBody:
  type: object
  properties:
    net-tests:
      type: array
      items:
        type: object
        properties:
          name: {type: string}
          version: {type: string}
OpenReportBody:
  type: object
  properties:
    data_format_version: {type: string}
    format:
      type: string
      enum: [json, yaml]
    probe_asn: {type: string, example: AS30722}
    probe_cc: {type: string, example: IT}
    software_name: {type: string}
    software_version: {type: string}
    test_name: {type: string, example: web_connectivity}
    test_start_time: {type: string}
    test_version: {type: string}
ReceiveMeasurementBody:
  type: object
  required: [format, content]
  properties:
    format:
      type: string
      enum: [json, yaml]
    content: {type: object}
SubmitMeasurementBody:
  type: object
  required: [format, content]
  properties:
    format:
      type: string
      enum: [json]
    content: {type: string, description: the measurement serialised as a JSON string (an object is accepted
        too)}
    nym: {type: string}
    zkp_request: {type: string}
    manifest_version: {type: string}
    protocol_version: {type: integer}
""")
